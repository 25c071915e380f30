"""Managed Redis refuses CONFIG (ElastiCache, MemoryDB): a redis-server with ``rename-command
CONFIG ""``. Beat starts, warns once saying what to set in the provider's console, and
dispatches; ``BEATKEEPER_EVICTION_CHECK=error`` makes it refuse to start, in one line."""
from __future__ import annotations

import json

import pytest
import redis

from tests.servers import RedisServer, wait_until

pytestmark = pytest.mark.process
START_TIMEOUT_S = 60
WARNING = "self-check redis-eviction: cannot read Redis maxmemory-policy: CONFIG GET is refused"


@pytest.fixture
def no_config_redis(tmp_path):
    server = RedisServer(tmp_path / "redis", extra_args=("--rename-command", "CONFIG", "")).start()
    yield server
    server.kill()


def _env(tmp_path, url: str, **extra: str) -> dict[str, str]:
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps({"fast-heartbeat": {"task": "beatkeeper.heartbeat", "every": 1, "expires": 5,
                                                      "max_runs_per_hour": 4000}}))
    return {"REDIS_URL": url, "CELERY_RESULT_BACKEND": url, "BEATKEEPER_SCHEDULE": str(path),
            "BEATKEEPER_MIN_INTERVAL": "1", "BEATKEEPER_LOOP_INTERVAL": "1",
            "BEATKEEPER_DISABLE": "beatkeeper-heartbeat", **extra}


def test_without_config_beat_warns_once_and_dispatches_and_error_mode_refuses(processes, no_config_redis, tmp_path):
    client = redis.Redis.from_url(no_config_redis.url, decode_responses=True)
    with pytest.raises(redis.ResponseError):
        client.config_get("maxmemory*")  # as ElastiCache answers

    strict = processes.celery("beat", "--loglevel=INFO", name="strict",
                              env=_env(tmp_path, no_config_redis.url, BEATKEEPER_EVICTION_CHECK="error"))
    assert strict.wait(timeout=START_TIMEOUT_S) != 0
    log = strict.log_path.read_text()
    # One line, the same wherever beat says it (its log and the refusal it prints).
    said = {line.split("] ", 1)[-1].removeprefix("beat: ") for line in log.splitlines() if "redis-eviction" in line}
    assert len(said) == 1 and said.pop().startswith(WARNING) and "Traceback" not in log
    assert not client.llen("default")  # refused before dispatching anything

    beat = processes.celery("beat", "--loglevel=INFO", name="beat", env=_env(tmp_path, no_config_redis.url))
    # No worker: the dispatched heartbeats wait in the broker's queue, which is what beat did.
    wait_until(lambda: client.llen("default") >= 2, timeout_s=START_TIMEOUT_S, what="beat's dispatches")
    assert beat.poll() is None
    log = beat.log_path.read_text()
    [warning] = [line for line in log.splitlines() if "redis-eviction" in line]
    assert WARNING in warning and "WARNING" in warning
    assert "maxmemory-policy to noeviction in the provider's console" in warning
    assert "Traceback" not in log
