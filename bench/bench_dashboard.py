"""How fast does the monitor's dashboard render? The overview at 1,000 entries with 100,000
history rows (target <= 200 ms) and an entry page (target <= 100 ms), and their JSON.

The schedule is bench_validate_plan's mix (every / cron in eight zones / windows / at); the
history is a real SQLite database migrated to head, 100 runs per entry; Redis is a private
redis-server with redbeat's schedule, 50 pauses, 20 firing alerts and 10 held locks. Each page
is the WSGI app called directly (no HTTP), as the monitor's server calls it. Prints a table.

Anchor, in the same run: the overview's read of every entry's latest runs done the simple way,
one indexed ``LIMIT`` query per entry, against the two statements the overview uses.

    .venv/bin/python bench/bench_dashboard.py [--entries 1000] [--rows 100000] [--repeat 15]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import print_load_at_start_and_end  # noqa: E402
sys.path.insert(0, str(ROOT / "bench"))

import redis  # noqa: E402

from bench_validate_plan import NOW, build_schedule  # noqa: E402
from monitoring.alerts import ActiveAlert, Alert, AlertStore, Severity  # noqa: E402
from monitoring.db import engine_for  # noqa: E402
from monitoring.history import HistoryStore, RunRecord  # noqa: E402
from monitoring.migrations import upgrade_database  # noqa: E402
from monitoring.pauses import PauseStore  # noqa: E402
from monitoring.rules.base import PlatformKeys  # noqa: E402
from monitoring.web.app import dashboard_app  # noqa: E402
from monitoring.web.history_reads import _COLUMNS, RecentRuns, _record, recent_runs_of  # noqa: E402
from monitoring.web.sources import DashboardSources  # noqa: E402
from schedules.settings import ScheduleSettings  # noqa: E402
from schedules.validate import validate_schedule  # noqa: E402
from tests.servers import RedisServer  # noqa: E402
from tests.web.dashboard_fixtures import call  # noqa: E402

logging.disable(logging.WARNING)
KEYS = PlatformKeys()
STATUSES = ["success"] * 8 + ["failure", "skipped_overlap"]


def fill_history(store: HistoryStore, names: list[str], rows: int) -> None:
    per_entry = rows // len(names)
    batch: list[RunRecord] = []
    for n, name in enumerate(names):
        for i in range(per_entry):
            fire_at = NOW - timedelta(minutes=10 * (per_entry - i))
            status = STATUSES[(n + i) % len(STATUSES)]
            started = None if status == "skipped_overlap" else fire_at + timedelta(seconds=(i % 7) * 0.3)
            batch.append(RunRecord(task_name=f"bench.task_{n % 1000}", task_id=f"{name}-{i}", status=status,
                                   entry=name, fire_at=fire_at, started_at=started,
                                   finished_at=fire_at + timedelta(seconds=2 + i % 5),
                                   error_type="ValueError" if status == "failure" else None,
                                   error_message="bad row" if status == "failure" else None))
            if len(batch) == 5000:
                store.write(batch)
                batch = []
    if batch:
        store.write(batch)


def timed_ms(app, path: str, query: dict, repeat: int) -> tuple[float, float, float, float]:
    """Median and p95 wall time, and median and least CPU time of this process (what a loaded
    machine inflates least: the least is the nearest to a quiet core)."""
    call(app, path, query=query, user=None)  # warm: imports, caches of DST effects and next fires
    times, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        status, _, _ = call(app, path, query=query, user=None)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
        assert status == 200, (path, status)
    times.sort()
    return (statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))], statistics.median(cpu),
            min(cpu))


def per_entry_reads(engine, names: list[str], limit: int = 10) -> dict[str, RecentRuns]:
    """The anchor: the same answer as ``recent_runs_of`` the way the overview read it before, one
    indexed ``LIMIT`` query per entry on the driver's cursor, the first row made a record."""
    sql = (f"SELECT {', '.join(_COLUMNS)}, lateness_s FROM beatkeeper_task_runs WHERE entry = ? "
           f"ORDER BY finished_at DESC, id DESC LIMIT {int(limit)}")
    status_at, lateness_at = _COLUMNS.index("status"), len(_COLUMNS)
    found = {}
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        for name in names:
            rows = cursor.execute(sql, (name,)).fetchall()
            if rows:
                found[name] = RecentRuns(_record(rows[0][:lateness_at]), [(r[status_at], r[lateness_at]) for r in rows])
        cursor.close()
    finally:
        connection.close()
    return found


def cpu_ms(work, repeat: int) -> tuple[float, float]:
    """Median and least CPU ms of ``work()``."""
    cpu = []
    for _ in range(repeat):
        start = time.process_time()
        work()
        cpu.append((time.process_time() - start) * 1000)
    return statistics.median(cpu), min(cpu)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    print_load_at_start_and_end()
    workdir = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    server = RedisServer(workdir / "redis").start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        specs = validate_schedule(build_schedule(args.entries, seed=1), settings=ScheduleSettings(min_interval_s=1),
                                  registered_tasks=None, now=NOW).entries
        names = sorted(specs)
        url = f"sqlite:///{workdir / 'history.db'}"
        upgrade_database(url)
        store = HistoryStore(engine_for(url), redis_client=client)
        started = time.perf_counter()
        fill_history(store, names, args.rows)
        fill_s = time.perf_counter() - started
        client.zadd(KEYS.redbeat_schedule_key, {KEYS.redbeat_prefix + n: NOW.timestamp() + 60 for n in names})
        pauses, alerts = PauseStore(client), AlertStore(client)
        for name in names[:50]:
            pauses.pause(name, now=NOW.timestamp(), reason="bench")
        for name in names[50:70]:
            alerts.put(ActiveAlert(Alert("run_failed", name, Severity.WARNING, "failed"), since=NOW.timestamp(),
                                   notified_at=NOW.timestamp()))
        alerts.flush()
        for i, name in enumerate(names[70:80]):
            lock = f"{KEYS.lock_prefix}bench.task_{i}"
            client.set(lock, "t", px=600_000)
            client.hset(lock + KEYS.lock_meta_suffix, "holder", json.dumps({"entry": name, "task_id": f"t{i}"}))
        now_s = (NOW + timedelta(minutes=5)).timestamp()
        app = dashboard_app(DashboardSources(client=client, specs=lambda: specs, history=store, keys=KEYS,
                                             clock=lambda: now_s))
        entry = names[len(names) // 2]
        cases = [("overview (HTML)", "/", {}, 200), ("overview (JSON)", "/overview.json", {}, 200),
                 ("overview filtered (state=failing)", "/", {"state": "failing"}, 200),
                 ("entry page (HTML)", "/entry", {"name": entry}, 100),
                 ("entry page (JSON)", "/entry.json", {"name": entry}, 100),
                 ("entry page 2, status=success", "/entry", {"name": entry, "page": "2", "status": "success"}, 100),
                 ("badge", "/badge.svg", {"name": entry}, 100)]
        print(f"{args.entries} entries, {args.rows} history rows (SQLite; filled in {fill_s:.1f} s), "
              f"{args.repeat} renders each\n")
        print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
        print("| page | median ms | p95 ms | CPU ms (median) | CPU ms (least) | target ms |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, path, query, target in cases:
            median, p95, cpu, least = timed_ms(app, path, query, args.repeat)
            print(f"| {label} | {median:.1f} | {p95:.1f} | {cpu:.1f} | {least:.1f} | {target} |")
        assert per_entry_reads(store.engine, names) == recent_runs_of(store.engine, names)  # the same answer
        print("\n| latest runs of every entry | CPU ms (median) | CPU ms (least) |\n|---|---:|---:|")
        for label, work in (("one query per entry (anchor)", lambda: per_entry_reads(store.engine, names)),
                            ("two statements (the overview's)", lambda: recent_runs_of(store.engine, names))):
            median, least = cpu_ms(work, args.repeat)
            print(f"| {label} | {median:.1f} | {least:.1f} |")
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
