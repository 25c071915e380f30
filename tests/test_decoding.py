"""One decoding rule: every Redis client beatkeeper reads with decodes responses, so no module
converts bytes by hand (a ``_text`` helper per module was the symptom of not knowing which)."""
from __future__ import annotations

import re
from pathlib import Path

from redbeat.schedulers import get_redis

from tasks.cli.monitor import monitor_redis
from tasks.infra.redis_client import app_redis

ROOT = Path(__file__).resolve().parent.parent
# Two reads of data not from a beatkeeper client: redis-py's own lock token (kept as bytes) and
# kombu's messages in the broker's Redis.
ALLOWED = {("tasks/locks/fenced.py", 1), ("tasks/beat/delivery_watch.py", 1)}
BY_HAND = re.compile(r"\.decode\([^)]*\) if isinstance\(|def _text\(")


def hand_decodes(root: Path) -> dict[str, int]:
    found = {}
    for path in sorted([*root.glob("tasks/**/*.py"), *root.glob("monitoring/**/*.py")]):
        count = len(BY_HAND.findall(path.read_text()))
        if count:
            found[str(path.relative_to(root))] = count
    return found


def test_no_module_decodes_redis_replies_by_hand():
    assert set(hand_decodes(ROOT).items()) <= ALLOWED


def test_the_rule_catches_a_hand_decode(tmp_path):
    module = tmp_path / "monitoring" / "new.py"
    module.parent.mkdir()
    module.write_text("def _text(value):\n    return value.decode() if isinstance(value, bytes) else value\n")
    assert hand_decodes(tmp_path) == {"monitoring/new.py": 2}


def test_every_client_beatkeeper_reads_with_decodes(app, redis_url):
    clients = [app_redis(app), monitor_redis(redis_url), get_redis(app)]
    for client in clients:
        assert client.connection_pool.connection_kwargs.get("decode_responses") is True, client
