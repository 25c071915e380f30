"""What does recording every run cost?

No-op task throughput through one real prefork worker (``-c 2``), four tasks alternating on
the same worker in the same run, against a private loopback redis-server:

- ``plain``: a plain Celery task (``base=celery.Task``: no guard, no middleware);
- ``off``: the guarded task with the standard middlewares except history;
- ``sqlite``: the same plus history into SQLite (WAL) through the Redis spool;
- ``postgres``: the same plus history into a private Postgres (skipped if not installed).

Target: history costs no more than 10 % throughput (``sqlite`` and ``postgres`` >= 90 % of
``off``). Each round pre-loads N messages into a queue the worker does not consume yet, then
tells it to consume (``add_consumer``). Two clocks per round: until every message is
acknowledged ("executed"), and until, in addition, every history row is in SQL ("recorded",
the strict figure: the drainer must keep up, not just defer).

On a shared machine wall-clock rates swing by 2x between rounds, so two steadier figures are
printed too: the median of per-round ratios (each round against the ``off`` round next to it)
and the CPU seconds per task of every process involved (worker and its pool children,
redis-server, the Postgres server), read from /proc: at saturation, throughput is cores / CPU
per task, so ``off``'s CPU per task over another's is the throughput ratio contention aside.

    .venv/bin/python bench/bench_history.py [--tasks 2500] [--rounds 6]
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import print_load_at_start_and_end  # noqa: E402

from celery import Task  # noqa: E402

from bench.workers import wait_ready  # noqa: E402

KINDS = ("plain", "off", "sqlite", "postgres")
SPOOL_OF = {"sqlite": "bench:history:spool:sqlite", "postgres": "bench:history:spool:postgres"}
SQLITE_ENV, POSTGRES_ENV = "BENCH_HISTORY_SQLITE_URL", "BENCH_HISTORY_POSTGRES_URL"


def _define_tasks() -> dict:
    from tasks.application import app

    @app.task(name="bench.history.plain", base=Task, ignore_result=True)
    def plain(i: int) -> None:
        return None

    tasks = {"plain": plain}
    for kind in ("off", "sqlite", "postgres"):
        @app.task(name=f"bench.history.{kind}", overlap="allow", ignore_result=True)
        def guarded(i: int) -> None:
            return None
        tasks[kind] = guarded
    return tasks


def _install_middlewares() -> None:
    """The worker's list: history only for the ``sqlite``/``postgres`` tasks, each with its own store."""
    from monitoring.db import engine_for
    from monitoring.history import HistoryStore
    from tasks.application import app
    from tasks.guard import standard_middlewares
    from tasks.guard.history import Drainer, HistoryMiddleware
    from tasks.guard.middleware import Middleware
    from tasks.infra.redis_client import app_redis

    class HistoryForTask(Middleware):
        def __init__(self, by_task: dict):
            self.by_task = by_task

        def before_run(self, run):
            middleware = self.by_task.get(run.task_name)
            return None if middleware is None else middleware.before_run(run)

        def after_run(self, run, outcome) -> None:
            middleware = self.by_task.get(run.task_name)
            if middleware is not None:
                middleware.after_run(run, outcome)

    by_task = {}
    for kind, env in (("sqlite", SQLITE_ENV), ("postgres", POSTGRES_ENV)):
        url = os.environ.get(env)
        if url:
            store = HistoryStore(lambda url=url: engine_for(url), redis_client=app_redis(app), spool_key=SPOOL_OF[kind])
            by_task[f"bench.history.{kind}"] = HistoryMiddleware(store, drainer=Drainer())
    rest = [m for m in standard_middlewares(app) if not isinstance(m, HistoryMiddleware)]
    app.beatkeeper.replace(middlewares=[HistoryForTask(by_task), *rest])


if __name__ != "__main__":  # imported by the bench's worker through BEATKEEPER_TASK_MODULES
    TASKS = _define_tasks()
    _install_middlewares()


def start_worker(name: str, env: dict, logdir: Path) -> subprocess.Popen:
    log = open(logdir / f"{name}.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "tasks", "worker", "-n", f"{name}@%h",
                             "-P", "prefork", "-c", "2", "-Q", "default", "--without-gossip",
                             "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"],
                            cwd=ROOT, env={**os.environ, **env, "BEATKEEPER_TASK_MODULES": "bench.bench_history"},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def cpu_s(root_pids: list[int]) -> float:
    """User + system CPU seconds of ``root_pids`` and all their descendants (Linux /proc)."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))  # ppid, utime + stime
    wanted, frontier = set(root_pids), list(root_pids)
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in stats.items():
            if ppid == parent and pid not in wanted:
                wanted.add(pid)
                frontier.append(pid)
    return sum(stats[pid][1] for pid in wanted if pid in stats) / os.sysconf("SC_CLK_TCK")


def one_round(app, client, task, kind: str, hostname: str, n: int, stores: dict,
              pids: list[int]) -> tuple[float, float, float]:
    """(executed/s, recorded/s, CPU s per task) for ``n`` pre-loaded messages of ``task``."""
    queue = f"bench-{kind}"
    rows_before = stores[kind].count() if kind in stores else 0
    for i in range(n):
        task.apply_async((i,), queue=queue)
    cpu_before = cpu_s(pids)
    start = time.perf_counter()
    app.control.add_consumer(queue, destination=[hostname], reply=True, timeout=5)
    while client.llen(queue) or client.hlen("unacked"):
        time.sleep(0.002)
    executed = time.perf_counter() - start
    if kind in stores:
        while client.llen(SPOOL_OF[kind]) or stores[kind].count() < rows_before + n:
            time.sleep(0.005)
    recorded = time.perf_counter() - start
    cpu_per_task_s = (cpu_s(pids) - cpu_before) / n
    app.control.cancel_consumer(queue, destination=[hostname], reply=True, timeout=5)
    return n / executed, n / recorded, cpu_per_task_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2500, help="messages per round")
    parser.add_argument("--rounds", type=int, default=6)
    options = parser.parse_args()
    print_load_at_start_and_end()

    from tests.postgres import PostgresServer, postgres_bin_dir
    from tests.servers import RedisServer

    workdir = Path(tempfile.mkdtemp(prefix="bench-history-"))
    server = RedisServer(workdir / "redis").start()
    postgres = PostgresServer(postgres_bin_dir()).start() if postgres_bin_dir() else None
    urls = {"sqlite": f"sqlite:///{workdir / 'history.db'}"}
    if postgres:
        urls["postgres"] = postgres.url
    os.environ.update(REDIS_URL=server.url, BEATKEEPER_DATA_DIR=str(workdir / "data"),
                      DATABASE_URL=urls["sqlite"], BEATKEEPER_MAX_RUNS_PER_HOUR=str(10**9))
    proc = None
    try:
        from monitoring.db import engine_for
        from monitoring.history import HistoryStore
        from monitoring.migrations import upgrade_database

        tasks = _define_tasks()
        from tasks.application import app
        from tasks.infra.redis_client import app_redis

        client = app_redis(app)
        stores = {}
        for kind, url in urls.items():
            upgrade_database(url)
            stores[kind] = HistoryStore(engine_for(url), spool_key=SPOOL_OF[kind])
        kinds = [k for k in KINDS if k in ("plain", "off") or k in urls]
        hostname = f"bench-history@{socket.gethostname()}"
        proc = start_worker("bench-history", {SQLITE_ENV: urls["sqlite"], POSTGRES_ENV: urls.get("postgres", "")},
                            workdir)
        wait_ready(app, hostname)
        pids = [proc.pid, server.proc.pid] + ([_postmaster_pid(postgres)] if postgres else [])
        for kind in kinds:  # fork, connect, import, first inserts
            one_round(app, client, tasks[kind], kind, hostname, min(options.tasks, 200), stores, pids)
        rates: dict[str, list[tuple[float, float, float]]] = {k: [] for k in kinds}
        for r in range(options.rounds):
            order = kinds if r % 2 == 0 else list(reversed(kinds))
            for kind in order:
                rates[kind].append(one_round(app, client, tasks[kind], kind, hostname, options.tasks, stores, pids))
        server_pids = pids[1:]
        per_record = {kind: per_record_cpu_us(stores[kind], client, server_pids, options.tasks)
                      for kind in urls}
    finally:
        if proc is not None:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
        if postgres:
            postgres.stop()
        server.kill()
    report(rates, per_record, options, postgres_missing=postgres is None)


def per_record_cpu_us(store, client, server_pids: list[int], n: int) -> tuple[float, float]:
    """CPU µs per record, client plus servers: spooling it (the hot path) and draining it to SQL."""
    from datetime import datetime, timezone

    from monitoring.history import RunRecord

    now = datetime.now(timezone.utc)
    records = [RunRecord(task_name="bench.history.x", task_id=f"{i:036d}", status="success", finished_at=now,
                         entry="bench-entry", fire_at=now, received_at=now, started_at=now,
                         hostname="bench@host", fencing_token=i) for i in range(n)]
    store.redis = client
    cpu, servers = time.process_time(), cpu_s(server_pids)
    for record in records:
        store.record(record)
    spool_us = ((time.process_time() - cpu) + (cpu_s(server_pids) - servers)) / n * 1e6
    cpu, servers = time.process_time(), cpu_s(server_pids)
    store.drain()
    drain_us = ((time.process_time() - cpu) + (cpu_s(server_pids) - servers)) / n * 1e6
    return spool_us, drain_us


def _postmaster_pid(postgres) -> int:
    return int((postgres.data_dir / "postmaster.pid").read_text().split()[0])


def report(rates: dict[str, list[tuple[float, float, float]]], per_record: dict[str, tuple[float, float]], options,
           *, postgres_missing: bool) -> None:
    def median(kind: str, i: int) -> float:
        return statistics.median(r[i] for r in rates[kind])

    def median_ratio(kind: str, i: int) -> float:  # each round against the off round of the same pass
        return statistics.median(r[i] / off[0] for r, off in zip(rates[kind], rates["off"]))

    print(f"\n### No-op task throughput, one prefork worker -c 2 "
          f"({options.rounds} alternating rounds x {options.tasks} tasks, medians)\n")
    print("| task | executed/s | ratio to off | recorded in SQL/s | ratio to off | CPU ms/task | "
          "off CPU / this CPU | target |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    off_cpu = median("off", 2)
    for kind in rates:
        target = ">= 90 % of off" if kind in ("sqlite", "postgres") else ""
        print(f"| {kind} | {median(kind, 0):.0f} | {median_ratio(kind, 0):.1%} | {median(kind, 1):.0f} | "
              f"{median_ratio(kind, 1):.1%} | {median(kind, 2) * 1000:.2f} | {off_cpu / median(kind, 2):.1%} | "
              f"{target} |")
    print(f"\n### History's own CPU per run (in this process, plus redis-server and Postgres; {options.tasks} "
          "records)\n")
    print("| database | spool (hot path) µs | drain to SQL µs | total µs | share of off's CPU/task |")
    print("|---|---:|---:|---:|---:|")
    for kind, (spool_us, drain_us) in per_record.items():
        print(f"| {kind} | {spool_us:.0f} | {drain_us:.0f} | {spool_us + drain_us:.0f} | "
              f"{(spool_us + drain_us) / (off_cpu * 1e6):.1%} |")
    if postgres_missing:
        print("\npostgres: skipped (Postgres server binaries not installed)")
    print("\nper-round executed/s:", {k: [round(r[0]) for r in v] for k, v in rates.items()})
    print("per-round CPU ms/task:", {k: [round(r[2] * 1000, 2) for r in v] for k, v in rates.items()})


if __name__ == "__main__":
    main()
