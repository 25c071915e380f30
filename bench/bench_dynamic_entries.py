"""Dynamic entries at 100,000: beat's idle tick, one add (``put``) and one remove, beside redbeat
2.4's own entry ``save()`` / ``delete()`` and idle tick at the same size, in the same run, on one
private redis-server.

    .venv/bin/python bench/bench_dynamic_entries.py [--entries 100000] [--samples 1000]

The timed adds and removes alternate with redbeat's (beatkeeper, redbeat, beatkeeper, ...) so both
meet the same load on a shared machine. The 100,000 are per-user entries: three in four one-off
reminders (``at``, the next year, four zones), one in four daily ``cron`` at a per-user minute.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import logging  # noqa: E402

from tests.servers import RedisServer  # noqa: E402

logging.disable(logging.WARNING)

WORKDIR = Path(tempfile.mkdtemp(prefix="bench-dynamic-"))
SERVER = RedisServer(WORKDIR / "redis").start()
SCHEDULE = WORKDIR / "schedule.json"
SCHEDULE.write_text(json.dumps({"file-tick": {"task": "beatkeeper.heartbeat", "every": 60}}))
os.environ.update(REDIS_URL=SERVER.url, BEATKEEPER_MAX_RUNS_PER_HOUR="100000000", BEATKEEPER_DISABLE="",
                  BEATKEEPER_DATA_DIR=str(WORKDIR), BEATKEEPER_SCHEDULE=str(SCHEDULE))

from celery import Celery  # noqa: E402
from celery.schedules import crontab  # noqa: E402
from redbeat.schedulers import RedBeatScheduler, RedBeatSchedulerEntry  # noqa: E402

from tasks import app as bk_app  # noqa: E402
from tasks.beat import BeatkeeperScheduler  # noqa: E402
from tasks.dynamic_entries import DynamicEntries  # noqa: E402

TASK = "bench.remind"
ZONES = ("Australia/Sydney", "America/New_York", "Europe/London", "Asia/Kolkata")
FILL_BATCH = 1000


@bk_app.task(name=TASK)
def remind(user_id: int) -> None:
    """A per-user reminder (never run here)."""


def user_entry(i: int, start: datetime) -> dict:
    zone = ZONES[i % len(ZONES)]
    if i % 4:
        at = start + timedelta(days=1 + i % 360, minutes=i % 1440)
        return {"task": TASK, "at": at.strftime("%Y-%m-%dT%H:%M:00"), "timezone": zone,
                "kwargs": {"user_id": i}}
    return {"task": TASK, "cron": f"{i % 60} {i // 60 % 24} * * *", "timezone": zone, "catchup": "latest",
            "kwargs": {"user_id": i}}


def anchor_app() -> Celery:
    app = Celery("anchor")
    app.config_from_object("celeryconfig")
    url = SERVER.url.rsplit("/", 1)[0] + "/1"
    app.conf.update(broker_url=url, redbeat_redis_url=url, redbeat_key_prefix="anchor:", beat_schedule={})
    return app


def redbeat_entry(app: Celery, i: int) -> RedBeatSchedulerEntry:
    return RedBeatSchedulerEntry(f"user:{i}", TASK, crontab(minute=i % 60, hour=i // 60 % 24),
                                 kwargs={"user_id": i}, app=app)


def ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99)] * 1000


def idle_tick_ms(scheduler, ticks: int = 200) -> list[float]:
    samples = []
    for _ in range(ticks):
        began = time.perf_counter()
        scheduler.tick()
        samples.append(time.perf_counter() - began)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    bk_app.loader.import_default_modules()
    start = datetime.now(timezone.utc)
    entries = DynamicEntries.for_app(bk_app)
    began = time.perf_counter()
    for first in range(0, args.entries, FILL_BATCH):
        entries.put_many({f"user:{i}": user_entry(i, start) for i in range(first, min(first + FILL_BATCH,
                                                                                          args.entries))})
    fill_s = time.perf_counter() - began

    rb_app = anchor_app()
    rb_scheduler = RedBeatScheduler(app=rb_app, lazy=False)
    rb_scheduler.lock_key = None
    began = time.perf_counter()
    for i in range(args.entries):
        redbeat_entry(rb_app, i).save()
    rb_fill_s = time.perf_counter() - began

    began = time.perf_counter()
    scheduler = BeatkeeperScheduler(app=bk_app, lazy=False)
    startup_s = time.perf_counter() - began
    scheduler.lock_key = None  # one beat here: the lock is measured in bench_beat
    bk_idle = idle_tick_ms(scheduler)
    rb_idle = idle_tick_ms(rb_scheduler)
    began = time.perf_counter()
    scheduler._reconcile(scheduler._redis())  # the full look every RECONCILE_S (60 s)
    reconcile_s = time.perf_counter() - began

    # alternating adds (a new name each) and removes at the full size
    samples: dict[str, list[float]] = {k: [] for k in ("bk add", "rb add", "bk remove", "rb remove")}
    added = [(f"new:{i}", user_entry(i + 1, start), redbeat_entry(rb_app, args.entries + i))
             for i in range(args.samples)]
    for name, spec, rb_entry in added:
        t0 = time.perf_counter()
        entries.put(name, spec)
        t1 = time.perf_counter()
        rb_entry.save()
        t2 = time.perf_counter()
        samples["bk add"].append(t1 - t0)
        samples["rb add"].append(t2 - t1)
    for name, _, rb_entry in added:
        t0 = time.perf_counter()
        entries.remove(name)
        t1 = time.perf_counter()
        rb_entry.delete()
        t2 = time.perf_counter()
        samples["bk remove"].append(t1 - t0)
        samples["rb remove"].append(t2 - t1)
    bk_idle_after = idle_tick_ms(scheduler)

    print(f"{args.entries} dynamic entries (3/4 one-off `at`, 1/4 daily cron, 4 zones); {args.samples} timed "
          f"adds and removes each, alternating with redbeat's; Python {sys.version.split()[0]}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| measure | beatkeeper | redbeat | bk/redbeat |")
    print("|---|---:|---:|---:|")
    rows = [("idle tick p50 (ms)", ms(bk_idle)[0], ms(rb_idle)[0]),
            ("idle tick p99 (ms)", ms(bk_idle)[1], ms(rb_idle)[1]),
            ("idle tick p50 after the adds/removes (ms)", ms(bk_idle_after)[0], None),
            ("add p50 (ms)", ms(samples["bk add"])[0], ms(samples["rb add"])[0]),
            ("add p99 (ms)", ms(samples["bk add"])[1], ms(samples["rb add"])[1]),
            ("remove p50 (ms)", ms(samples["bk remove"])[0], ms(samples["rb remove"])[0]),
            ("remove p99 (ms)", ms(samples["bk remove"])[1], ms(samples["rb remove"])[1]),
            (f"fill {args.entries} (s): put_many by {FILL_BATCH} / save() each", fill_s, rb_fill_s),
            ("beat start-up with them (s)", startup_s, None),
            ("full reconcile, every 60 s (ms)", reconcile_s * 1000, None)]
    for label, bk, rb in rows:
        ratio = "n/a" if rb is None or not rb else f"{bk / rb:.2f}"
        print(f"| {label} | {bk:.3g} | {'n/a' if rb is None else f'{rb:.3g}'} | {ratio} |")
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    SERVER.kill()


if __name__ == "__main__":
    main()
