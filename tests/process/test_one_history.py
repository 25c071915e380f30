"""Two hosts' worth of history (issue 17): workers on two hosts share one Redis spool, one of them
with the deployment's Postgres and one with a local SQLite file (what a second host gets when its
DATABASE_URL is left unset). Every row lands in the deployment's database, none in the stranger;
the stranger's worker and its monitor say why, in one readable line (``monitoring.history_home``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from monitoring.db import engine_for
from monitoring.history import HistoryStore
from monitoring.history_home import home_key
from monitoring.history import SPOOL_KEY
from monitoring.models import task_runs
from tests.tasks.beat import ledger_tasks as lt
from tests.conftest import ROOT
from tests.monitoring.databases import postgres_db_url, upgraded  # noqa: F401  (fixtures)
from tests.postgres import postgres_url  # noqa: F401
from tests.process.test_beat_faults import START_TIMEOUT_S, platform_env, start_worker
from tests.servers import free_port, wait_until

pytestmark = pytest.mark.process

RUNS = 40
REFUSAL = "is not this deployment's history database"


def rows(url: str) -> dict[str, int]:
    """hostname -> rows, in the database at ``url``."""
    with engine_for(url).connect() as connection:
        return dict(connection.execute(select(task_runs.c.hostname, func.count()).group_by(task_runs.c.hostname)).all())


def test_two_workers_with_different_databases_on_one_spool_fill_only_the_deployments(
        processes, redis_client, postgres_db_url, tmp_path):  # noqa: F811
    shared, stranger = postgres_db_url, upgraded(f"sqlite:///{tmp_path / 'host-b' / 'history.db'}")
    env = platform_env(tmp_path, {})
    host_a = start_worker(processes, {**env, "DATABASE_URL": shared}, "host-a", concurrency=2)
    lt.record.apply_async(queue="default")  # host A drains first: its Postgres becomes the deployment's
    wait_until(lambda: rows(shared), timeout_s=30, what="the first row in the shared Postgres")
    recorded = json.loads(redis_client.get(home_key(SPOOL_KEY)))
    assert set(recorded) == {"database_id", "url", "host", "since"}
    assert recorded["url"] == make_url(shared).render_as_string(hide_password=True)  # never a password

    host_b = start_worker(processes, {**env, "DATABASE_URL": stranger}, "host-b", concurrency=2)
    for _ in range(RUNS):
        lt.record.apply_async(kwargs={"hold_s": 0.1}, queue="default")
    wait_until(lambda: sum(rows(shared).values()) >= RUNS + 1, timeout_s=60, what=f"{RUNS + 1} rows")
    b_log = wait_until(lambda: REFUSAL in (text := Path(host_b.log_path).read_text()) and text, timeout_s=30,
                       what="host B to say it does not drain")

    in_shared, in_stranger = rows(shared), rows(stranger)
    by_b = sum(n for host, n in in_shared.items() if host.startswith("host-b@"))
    print(f"one history: shared Postgres {in_shared}; host B's SQLite {in_stranger}; spool left "
          f"{redis_client.llen(SPOOL_KEY)}")
    assert sum(in_shared.values()) == RUNS + 1 and in_stranger == {}
    assert by_b > 0  # host B ran some of them: its records crossed the spool into the shared database
    lines = [x for x in b_log.splitlines() if REFUSAL in x]
    assert 1 <= len(lines) <= 2  # once per process that drains (each of the 2 pool processes), not per try
    line = lines[0]
    assert "DATABASE_URL (sqlite:///" in line and recorded["url"] in line and f"delete the Redis key " \
        f"{home_key(SPOOL_KEY)}" in line
    assert "Traceback" not in b_log and "Traceback" not in Path(host_a.log_path).read_text()

    # host B's monitor: not ready, with the same reason
    port = free_port()
    processes.start([sys.executable, "-m", "tasks.cli", "monitor", "--port", str(port)], name="monitor-b",
                    env={**env, "DATABASE_URL": stranger, "BEATKEEPER_MONITOR_BASIC_AUTH": "ops:s3cret"})
    body = wait_until(lambda: _readyz(port), timeout_s=START_TIMEOUT_S, interval_s=0.5, what="host B's /readyz")
    assert body["ready"] is False and REFUSAL in body["checks"]["history"]["reason"]
    assert rows(stranger) == {}  # its monitor drained nothing either
    assert HistoryStore(engine_for(shared), redis_client=redis_client).home_refusal() is None
    # and `beatkeeper history` on host B says whose history it is not
    history = subprocess.run([sys.executable, "-m", "tasks.cli", "history"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, env={**os.environ, **env, "DATABASE_URL": stranger})
    assert history.returncode == 0 and history.stdout.strip() == "no runs recorded"
    [said] = history.stderr.splitlines()  # the drain's own line, once
    assert said.startswith("history: DATABASE_URL (sqlite:///") and REFUSAL in said


def _readyz(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as reply:
            return json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read()) if exc.code == 503 else None
    except OSError:
        return None
