"""How fast is CronTrigger.next_fire_after next to croniter and Celery's crontab?

Question: is beatkeeper's DST-aware next-fire search at least as fast as croniter 7's
``get_next`` (tz-aware start) and Celery's ``crontab.remaining_estimate``, for common
expressions in UTC and in Australia/Sydney? All three are measured in the same run.

* fresh lookup  -- the next fire after an arbitrary instant (what beat asks each tick):
  beatkeeper ``next_fire_after(start)``; croniter ``croniter(expr, start).get_next()``;
  Celery ``crontab.remaining_estimate(last_run_at)``.
* chained       -- successive fires (fire = next(fire)); croniter reuses one iterator.

Run: ``.venv/bin/python bench/bench_next_fire.py [--quick]``. Prints Markdown tables of
microseconds per call (best of several repeats) and ratios; lower ratio = beatkeeper faster.
"""
from __future__ import annotations

import argparse
import sys
import timeit
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from celery import Celery
from celery.schedules import crontab
from croniter import croniter

from schedules.cron import CronTrigger

EXPRESSIONS = ["*/5 * * * *", "30 2 * * *", "0 9 * * mon-fri", "0 0 1 1 *"]
ZONES = ["UTC", "Australia/Sydney"]


def best_us_per_call(func, number: int, repeat: int) -> float:
    """Best of ``repeat`` runs of ``number`` calls, in microseconds per call."""
    return min(timeit.repeat(func, number=number, repeat=repeat)) / number * 1e6


def measure_fresh(expr: str, tz: str, number: int, repeat: int) -> tuple[float, float, float]:
    start = datetime(2026, 3, 3, 10, 7, 13, tzinfo=ZoneInfo(tz))
    trigger = CronTrigger(expr, timezone=tz)
    trigger.next_fire_after(start)  # warm the per-zone transition cache, as a running beat would
    ours = best_us_per_call(lambda: trigger.next_fire_after(start), number, repeat)
    theirs = best_us_per_call(lambda: croniter(expr, start).get_next(datetime), number, repeat)

    app = Celery("bench", set_as_current=False)
    app.conf.timezone = tz
    schedule = crontab.from_string(expr)
    schedule.app = app
    celery = best_us_per_call(lambda: schedule.remaining_estimate(start), number, repeat)
    return ours, theirs, celery


def measure_chained(expr: str, tz: str, number: int, repeat: int) -> tuple[float, float]:
    start = datetime(2026, 3, 3, 10, 7, 13, tzinfo=ZoneInfo(tz))
    trigger = CronTrigger(expr, timezone=tz)

    def ours_chain() -> None:
        fire = start
        for _ in range(number):
            fire = trigger.next_fire_after(fire)

    def croniter_chain() -> None:
        iterator = croniter(expr, start)
        for _ in range(number):
            iterator.get_next(datetime)

    ours_chain()
    ours = min(timeit.repeat(ours_chain, number=1, repeat=repeat)) / number * 1e6
    theirs = min(timeit.repeat(croniter_chain, number=1, repeat=repeat)) / number * 1e6
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    args = parser.parse_args()
    number, repeat = (200, 3) if args.quick else (2000, 5)

    print("### Fresh lookup: next fire after an arbitrary instant (us per call)\n")
    print("| expression | zone | beatkeeper | croniter | celery | bk/croniter | bk/celery |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for expr in EXPRESSIONS:
        for tz in ZONES:
            ours, theirs, celery = measure_fresh(expr, tz, number, repeat)
            cells = [f"`{expr}`", tz, f"{ours:.1f}", f"{theirs:.1f}", f"{celery:.1f}",
                     f"{ours / theirs:.2f}", f"{ours / celery:.2f}"]
            print("| " + " | ".join(cells) + " |")

    print("\n### Chained: successive fires (us per fire)\n")
    print("| expression | zone | beatkeeper | croniter | bk/croniter |")
    print("|---|---|---:|---:|---:|")
    for expr in EXPRESSIONS:
        for tz in ZONES:
            ours, theirs = measure_chained(expr, tz, number // 4, repeat)
            print(f"| `{expr}` | {tz} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
