"""Is beatkeeper's beat fast at scale? Start-up, idle tick, first tick after a restart, a burst of
1,000 entries due at one instant, and lateness/CPU at 200 entries every 10 s — beside redbeat 2.4
and Celery's stock PersistentScheduler, measured in the same run on one private redis-server.

    .venv/bin/python bench/bench_beat.py [--entries 10000] [--lateness-s 30]

Each scheduler publishes real messages to the real broker. Entries of the mixed schedule
(every / cron / windows / at, from bench_validate_plan) are given to the anchors as the
nearest stock schedule (interval or crontab; zones and windows cannot be expressed there).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import logging  # noqa: E402

from tests.servers import RedisServer  # noqa: E402

logging.disable(logging.WARNING)  # DST warnings for thousands of entries would drown the table

PROBE = "--startup-probe" in sys.argv  # a child process timing one start-up (environment from its parent)
if not PROBE:
    WORKDIR = Path(tempfile.mkdtemp(prefix="bench-beat-"))
    SERVER = RedisServer(WORKDIR / "redis").start()
    os.environ.update(REDIS_URL=SERVER.url, BEATKEEPER_MAX_RUNS_PER_HOUR="100000000", BEATKEEPER_DISABLE="",
                      BEATKEEPER_DATA_DIR=str(WORKDIR))

from celery import Celery  # noqa: E402
from celery.signals import after_task_publish  # noqa: E402
from celery.beat import PersistentScheduler  # noqa: E402
from celery.schedules import crontab, schedule  # noqa: E402
from redbeat.schedulers import RedBeatScheduler, get_redis  # noqa: E402

from mixed_schedule import mixed, write_schedule_file  # noqa: E402
from load import print_load  # noqa: E402
from tasks import app as bk_app  # noqa: E402
from tasks.beat import batch_publish  # noqa: E402
from tasks.beat.scheduler import BeatkeeperScheduler  # noqa: E402

TASK = "beatkeeper.heartbeat"
BURST_LIMIT_S = 60.0  # a scheduler still sending a burst after this long is stopped there


def stock_schedule(entry: dict):
    if "every" in entry:
        return schedule(timedelta(seconds=entry["every"]))
    if "cron" in entry:
        minute, hour, dom, month, dow = entry["cron"].split()
        return crontab(minute=minute, hour=hour, day_of_month=dom, month_of_year=month, day_of_week=dow)
    every_min = int(str(entry["windows"][-1]["every"]).rstrip("m"))
    return crontab(minute=f"*/{every_min}")


def anchor_app(db: int) -> Celery:
    app = Celery("anchor")
    app.config_from_object("celeryconfig")
    url = SERVER.url.rsplit("/", 1)[0] + f"/{db}"
    app.conf.update(broker_url=url, redbeat_redis_url=url, redbeat_key_prefix="anchor:")
    return app


def bk_scheduler(raw: dict, **kwargs) -> BeatkeeperScheduler:
    path = WORKDIR / "schedule.json"
    if len(raw) > 20_000:  # over the 4 MiB a schedule file may hold as JSON: code that builds it
        path = write_schedule_file(WORKDIR / "mixed_schedule.py", len(raw))
    else:
        path.write_text(json.dumps(raw))
    os.environ["BEATKEEPER_SCHEDULE"] = str(path)
    scheduler = BeatkeeperScheduler(app=bk_app, lazy=False, **kwargs)
    scheduler.lock_key = None  # no second beat here; the lock is measured elsewhere
    return scheduler


def redbeat_scheduler(raw: dict, app: Celery) -> RedBeatScheduler:
    app.conf.beat_schedule = {n: {"task": TASK, "schedule": stock_schedule(e)} for n, e in raw.items()}
    scheduler = RedBeatScheduler(app=app, lazy=False)
    scheduler.lock_key = None
    return scheduler


def stock_scheduler(raw: dict, app: Celery) -> PersistentScheduler:
    app.conf.beat_schedule = {n: {"task": TASK, "schedule": stock_schedule(e)} for n, e in raw.items()}
    return PersistentScheduler(app=app, schedule_filename=str(WORKDIR / f"stock-{time.time_ns()}"), lazy=False)


def startup_probe() -> None:
    """In a fresh process, as `celery beat` runs: task modules imported first (Beat.init_loader),
    then the scheduler built; prints the seconds the scheduler took."""
    bk_app.loader.import_default_modules()
    began = time.perf_counter()
    BeatkeeperScheduler(app=bk_app, lazy=False)
    print(time.perf_counter() - began, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def startup_seconds(raw: dict, *, cold: bool, runs: int = 3) -> tuple[float, float]:
    """Median start-up of a fresh beat process (``cold`` on an empty Redis, else a restart), and
    the largest peak RSS (MB) of those processes once the scheduler is built."""
    path = write_schedule_file(WORKDIR / "mixed_schedule.py", len(raw))  # the same entries: mixed() is seeded
    env = {**os.environ, "BEATKEEPER_SCHEDULE": str(path)}
    samples, rss_mb = [], 0.0
    for _ in range(runs):
        if cold:
            get_redis(bk_app).flushdb()  # beatkeeper's database only: the anchors use others
        done = subprocess.run([sys.executable, __file__, "--startup-probe"], env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"the start-up probe failed: {done.stderr[-1500:]}")
        seconds, rss = done.stdout.split()[-2:]
        samples.append(float(seconds))
        rss_mb = max(rss_mb, float(rss))
    return statistics.median(samples), rss_mb


def timed(fn):
    began = time.perf_counter()
    result = fn()
    return time.perf_counter() - began, result


def idle_tick_ms(scheduler, ticks: int = 50) -> float:
    samples = []
    for _ in range(ticks):
        began = time.perf_counter()
        scheduler.tick()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples) * 1000


def burst_lateness(app_now, make, due: int) -> tuple[float, float, float, float, int]:
    """``due`` entries all due at the next hour, the tick that dispatches them run at that instant
    (+1 ms): lateness p50/p99 (ms) of the messages reaching the broker, the tick's seconds and its
    CPU seconds in this process (the steadier figure on a shared machine).

    A message reaches the broker when its publish returned (Celery's ``after_task_publish``), or,
    for beatkeeper's batches, when its batch's block ended (flush and records done: a bound from
    above)."""
    raw = {f"burst{due}-{i}": {"task": TASK, "cron": "0 * * * *"} for i in range(due)}  # names new to Redis
    scheduler = make(raw)
    scheduler.producer  # connected, as a running beat's is
    top = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    arrivals: list[float] = []
    batches: list[tuple[int, float]] = []  # (messages published so far, when the batch ended)

    def published(**_):
        arrivals.append(time.perf_counter())
    original = batch_publish.publish_then_record

    @contextmanager
    def timed_batch(producer, client):
        with original(producer, client) as records:
            yield records
        batches.append((len(arrivals), time.perf_counter()))
    after_task_publish.connect(published, weak=False)
    batch_publish.publish_then_record = timed_batch
    app_now(lambda: top + timedelta(milliseconds=1))
    try:
        began, cpu_began = time.perf_counter(), time.process_time()
        while len(arrivals) < due and time.perf_counter() - began < BURST_LIMIT_S:
            scheduler.tick()  # Celery's stock scheduler sends one entry per tick (and returns 0)
        seconds, cpu_s = time.perf_counter() - began, time.process_time() - cpu_began
    finally:
        app_now(None)
        batch_publish.publish_then_record = original
        after_task_publish.disconnect(published)
    if batches:  # a batched message reached the broker when its batch ended
        ends, done = [], 0
        for upto, ended in batches:
            ends += [ended] * (upto - done)
            done = upto
        arrivals = ends
    # beatkeeper's built-in entries may be due too; one still unsent after BURST_LIMIT_S counts as sent
    # then (a lower bound: the figure is then marked as such in the table by the sent count)
    late = sorted((t - began) * 1000 + 1.0 for t in arrivals)
    late += [seconds * 1000 + 1.0] * max(0, due - len(arrivals))
    return late[len(late) // 2], late[min(len(late) - 1, int(len(late) * 0.99))], seconds, cpu_s, len(arrivals)


def lateness(scheduler, duration_s: float, due_of) -> tuple[float, float, float]:
    """p50/p99 lateness (ms: publish minus due instant) and CPU share while the loop runs."""
    late: list[float] = []
    original = scheduler.apply_async if due_of is not None else scheduler._publish

    batched: list[float] = []  # due instants of the messages in beatkeeper's open batch
    original_batch = batch_publish.publish_then_record
    if due_of is None:  # beatkeeper: the scheduled instant is known exactly; sent when its batch ends
        def record(entry, fire_at, producer):
            batched.append(fire_at.timestamp())
            return original(entry, fire_at, producer)
        scheduler._publish = record

        @contextmanager
        def timed_batch(producer, client):
            with original_batch(producer, client) as records:
                yield records
            ended = time.time()
            late.extend(ended - due for due in batched)
            batched.clear()
        batch_publish.publish_then_record = timed_batch
    else:
        def record(entry, *args, **kwargs):
            late.append(time.time() - due_of(entry))
            return original(entry, *args, **kwargs)
        scheduler.apply_async = record
    wall0, cpu0 = time.monotonic(), time.process_time()
    while time.monotonic() - wall0 < duration_s:
        time.sleep(max(0.0, min(scheduler.tick(), scheduler.max_interval)))
    cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    batch_publish.publish_then_record = original_batch
    late.sort()
    return late[len(late) // 2] * 1000, late[int(len(late) * 0.99)] * 1000, cpu * 100


def set_now(app, fn) -> None:
    if fn is None:
        app.__dict__.pop("now", None)
    else:
        app.now = fn


def bursts(rows: dict[str, dict[str, float]]) -> None:
    """1,000 and 200 entries due at one instant, each scheduler on a fresh schedule."""
    bk_app.loader.import_default_modules()
    for db, due in ((5, 1000), (7, 200)):  # the anchors on databases of their own, empty
        rb_burst, st_burst = anchor_app(db), anchor_app(db + 1)
        for name, app_now, make in (
                ("beatkeeper", lambda f: set_now(bk_app, f), lambda r: bk_scheduler(r)),
                ("redbeat", lambda f: set_now(rb_burst, f), lambda r: redbeat_scheduler(r, rb_burst)),
                ("stock", lambda f: set_now(st_burst, f), lambda r: stock_scheduler(r, st_burst))):
            p50, p99, seconds, cpu_s, sent = burst_lateness(app_now, make, due)
            rows[name].update({f"{due:,} due at one instant: lateness p50 (ms)": p50,
                               f"{due:,} due at one instant: lateness p99 (ms)": p99,
                               f"{due:,} due at one instant: tick (s)": seconds,
                               f"{due:,} due at one instant: tick CPU (s)": cpu_s,
                               f"{due:,} due at one instant: sent within {BURST_LIMIT_S:g} s": sent})
        print_load(f"after the bursts of {due}")


def report(rows: dict[str, dict[str, float]], args) -> None:
    measures = list(dict.fromkeys(m for r in rows.values() for m in r))
    print(f"{args.entries} mixed entries; lateness at 200 entries every 10 s over {args.lateness_s:g} s; "
          f"Python {sys.version.split()[0]}\n")
    print("| measure | beatkeeper | redbeat | stock | bk/redbeat | bk/stock |")
    print("|---|---:|---:|---:|---:|---:|")
    for m in measures:
        bkv, rbv, stv = (rows[n].get(m) for n in ("beatkeeper", "redbeat", "stock"))
        fmt = lambda v: "n/a" if v is None else f"{v:.3g}"  # noqa: E731
        ratio = lambda a, b: "n/a" if a is None or not b else f"{a / b:.2f}"  # noqa: E731
        print(f"| {m} | {fmt(bkv)} | {fmt(rbv)} | {fmt(stv)} | {ratio(bkv, rbv)} | {ratio(bkv, stv)} |")
    print_load("end")
    SERVER.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--lateness-s", type=float, default=30.0)
    parser.add_argument("--burst-only", action="store_true", help="only the bursts of 1,000 and 200 due at one instant")
    parser.add_argument("--startup-only", action="store_true", help="only start-up, RSS, idle and first ticks")
    parser.add_argument("--startup-runs", type=int, default=3, help="fresh beat processes timed (the median)")
    args = parser.parse_args()
    print_load("start")
    raw = mixed(args.entries)
    rows: dict[str, dict[str, float]] = {"beatkeeper": {}, "redbeat": {}, "stock": {}}

    # `celery beat` imports the task modules (Beat.init_loader) before it builds its scheduler:
    # start-up is timed from there, for every scheduler alike. Beatkeeper's in fresh processes
    # (the median of 3): a machine shared with other work moves single timings by up to 2x.
    if args.burst_only:
        bursts(rows)
        return report(rows, args)
    rows["beatkeeper"]["start-up (s)"], rss_mb = startup_seconds(raw, cold=True, runs=args.startup_runs)
    rows["beatkeeper"]["restart start-up (s)"], rss_again_mb = startup_seconds(raw, cold=False, runs=args.startup_runs)
    rows["beatkeeper"]["beat RSS after start-up (MB)"] = max(rss_mb, rss_again_mb)
    bk_app.loader.import_default_modules()
    bk = bk_scheduler(raw)
    rows["beatkeeper"]["idle tick (ms)"] = idle_tick_ms(bk)
    restarted_at = datetime.now(timezone.utc)
    bk = bk_scheduler(raw)
    bk_app.now = lambda: restarted_at  # the instant of the restart: only overhead, no new fires
    rows["beatkeeper"]["first tick after restart (ms)"] = timed(bk.tick)[0] * 1000
    del bk_app.now

    rb_app = anchor_app(1)
    rows["redbeat"]["start-up (s)"], rb = timed(lambda: redbeat_scheduler(raw, rb_app))
    rows["redbeat"]["first tick after restart (ms)"] = timed(rb.tick)[0] * 1000  # never-run entries are due
    rows["redbeat"]["idle tick (ms)"] = idle_tick_ms(rb, ticks=5)
    rows["redbeat"]["restart start-up (s)"], rb = timed(lambda: redbeat_scheduler(raw, rb_app))

    st_app = anchor_app(2)
    rows["stock"]["start-up (s)"], st = timed(lambda: stock_scheduler(raw, st_app))
    st.tick()  # the first tick sends everything never run; measure the idle ones after it
    rows["stock"]["idle tick (ms)"] = idle_tick_ms(st)

    print_load("after start-up and idle ticks")
    if args.startup_only:
        return report(rows, args)
    bursts(rows)

    # beatkeeper's grid puts 200 `every: 10` entries on the same instant (a burst of 200 publishes);
    # with phases they spread over the 10 s, as the anchors' start-relative intervals do.
    aligned = {f"e{i}": {"task": TASK, "every": 10} for i in range(200)}
    spread = {f"e{i}": {"task": TASK, "every": 10, "phase": round(i * 0.05, 2)} for i in range(200)}
    interval_due = lambda entry: entry.last_run_at.timestamp() + 10  # noqa: E731
    for name, label, make, due_of in (
            ("beatkeeper", "aligned", lambda: bk_scheduler(aligned), None),
            ("beatkeeper", "spread", lambda: bk_scheduler(spread), None),
            ("redbeat", "spread", lambda: redbeat_scheduler(aligned, anchor_app(3)), interval_due),
            ("stock", "spread", lambda: stock_scheduler(aligned, anchor_app(4)), interval_due)):
        scheduler = make()
        scheduler.tick()
        p50, p99, cpu = lateness(scheduler, args.lateness_s, due_of)
        for anchor_label in (("aligned", "spread") if name != "beatkeeper" else (label,)):
            rows[name].update({f"lateness p50, {anchor_label} (ms)": p50, f"lateness p99, {anchor_label} (ms)": p99,
                               f"CPU while ticking, {anchor_label} (%)": cpu})

    print_load("after the lateness runs")
    report(rows, args)


if __name__ == "__main__":
    if PROBE:
        startup_probe()
    else:
        try:
            main()
        finally:
            SERVER.kill()  # also when a measure fails part-way (idempotent after report's)
