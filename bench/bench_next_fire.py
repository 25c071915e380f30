"""How fast is CronTrigger's next fire next to croniter's and cronsim's, like for like?

Question: on the peers' own expressions (every 5-field cron expression written in croniter's
and cronsim's test suites, ``bench/data/peer_cron_expressions.json``, kept where all three
libraries accept it), in UTC and in Australia/Sydney, is beatkeeper's DST-correct next fire at
least as fast as cronsim's and 3x croniter's? Two ways of asking, each the same for all three:

* object reused  -- one object per expression, successive fires: beatkeeper
  ``fire = trigger.next_fire_after(fire)``, croniter ``it.get_next(datetime)``, cronsim ``next(it)``.
* construction + first fire -- a new object per call, from the expression text: beatkeeper
  ``CronTrigger(expr, timezone=tz).next_fire_after(start)``, croniter
  ``croniter(expr, start).get_next(datetime)``, cronsim ``next(CronSim(expr, start))``.

Zones' transitions are cached per zone and year by every library alike after their first use;
nothing per expression is cached by any. Figures are microseconds per fire, the best of
``repeat`` runs per expression; a set's figure is the total over its expressions (so a slow
expression weighs as much as it costs), with the median per-expression ratio beside it.

Run: ``.venv/bin/python bench/bench_next_fire.py [--quick]``. Also Celery's
``crontab.remaining_estimate`` (its only "next fire") on the same sets, for reference.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import timeit
import warnings
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from celery import Celery  # noqa: E402
from celery.schedules import crontab  # noqa: E402
from croniter import croniter  # noqa: E402
from cronsim import CronSim  # noqa: E402

from load import print_load  # noqa: E402
from schedules.cron import CronTrigger  # noqa: E402

EXPRESSIONS_FILE = Path(__file__).resolve().parent / "data" / "peer_cron_expressions.json"
ZONES = ["UTC", "Australia/Sydney"]
START = (2026, 3, 3, 10, 7, 13)  # an arbitrary instant, Sydney's April fall-back within a month
LIBRARIES = ("beatkeeper", "croniter", "cronsim")


def accepted_by_all(expressions: list[str]) -> tuple[list[str], dict[str, int]]:
    """The expressions every library parses and finds a next fire for; rejections per library."""
    start = datetime(*START, tzinfo=ZoneInfo("UTC"))
    kept, refused = [], dict.fromkeys(LIBRARIES, 0)
    for expr in expressions:
        ok = True
        for name, first in (("beatkeeper", lambda: CronTrigger(expr).next_fire_after(start)),
                            ("croniter", lambda: croniter(expr, start).get_next(datetime)),
                            ("cronsim", lambda: next(CronSim(expr, start)))):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if first() is None:
                        raise ValueError("no fire")
            except Exception:  # noqa: BLE001 -- any refusal leaves the expression out for all
                refused[name] += 1
                ok = False
        if ok:
            kept.append(expr)
    return kept, refused


def best_us(func, number: int, repeat: int) -> float:
    """Best of ``repeat`` runs of ``func`` doing ``number`` fires, in microseconds per fire."""
    func()  # warm: zone caches, as a running process has them
    return min(timeit.repeat(func, number=1, repeat=repeat)) / number * 1e6


def reused(expr: str, tz: str, number: int, repeat: int) -> dict[str, float]:
    start = datetime(*START, tzinfo=ZoneInfo(tz))

    def ours() -> None:
        trigger, fire = CronTrigger(expr, timezone=tz), start
        for _ in range(number):
            fire = trigger.next_fire_after(fire)

    def theirs_croniter() -> None:
        it = croniter(expr, start)
        for _ in range(number):
            it.get_next(datetime)

    def theirs_cronsim() -> None:
        it = CronSim(expr, start)
        for _ in range(number):
            next(it)
    # one construction per `number` fires in each: the same small share for all three
    return {"beatkeeper": best_us(ours, number, repeat), "croniter": best_us(theirs_croniter, number, repeat),
            "cronsim": best_us(theirs_cronsim, number, repeat)}


def constructed(expr: str, tz: str, number: int, repeat: int) -> dict[str, float]:
    start = datetime(*START, tzinfo=ZoneInfo(tz))

    def ours() -> None:
        for _ in range(number):
            CronTrigger(expr, timezone=tz).next_fire_after(start)

    def theirs_croniter() -> None:
        for _ in range(number):
            croniter(expr, start).get_next(datetime)

    def theirs_cronsim() -> None:
        for _ in range(number):
            next(CronSim(expr, start))

    app = Celery("bench", set_as_current=False)
    app.conf.timezone = tz
    fields = expr.split()

    def celery() -> None:  # celery parses no L/W/#: measured where it accepts the expression
        for _ in range(number):
            schedule = crontab(*fields, app=app)
            schedule.remaining_estimate(start)
    out = {"beatkeeper": best_us(ours, number, repeat), "croniter": best_us(theirs_croniter, number, repeat),
           "cronsim": best_us(theirs_cronsim, number, repeat)}
    try:
        out["celery"] = best_us(celery, number, repeat)
    except Exception:  # noqa: BLE001 -- an expression Celery's crontab cannot express
        pass
    return out


def summary(label: str, results: list[dict[str, float]]) -> str:
    total = {name: sum(r[name] for r in results) for name in LIBRARIES}
    ratio = {peer: statistics.median(r["beatkeeper"] / r[peer] for r in results) for peer in ("croniter", "cronsim")}
    speedup = {peer: total[peer] / total["beatkeeper"] for peer in ("croniter", "cronsim")}
    per = {name: total[name] / len(results) for name in LIBRARIES}
    return (f"| {label} | {len(results)} | {per['beatkeeper']:.1f} | {per['croniter']:.1f} | {per['cronsim']:.1f} | "
            f"{speedup['croniter']:.2f}x | {speedup['cronsim']:.2f}x | "
            f"{1 / ratio['croniter']:.2f}x | {1 / ratio['cronsim']:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    args = parser.parse_args()
    number, repeat = (20, 2) if args.quick else (50, 3)
    data = json.loads(EXPRESSIONS_FILE.read_text())
    sets = {}
    for peer in ("croniter", "cronsim"):
        kept, refused = accepted_by_all(data[peer])
        sets[peer] = kept
        print(f"{peer}'s test-suite expressions: {len(data[peer])} found, {len(kept)} accepted by all three "
              f"(refused: {refused}); source: {data['sources'][peer]}")
    print(f"{number} fires per sample, best of {repeat}; us per fire, averaged over the set's expressions")
    print_load("start")
    print("\n| set, zone, way | expressions | beatkeeper us | croniter us | cronsim us | speed-up vs croniter "
          "(totals) | vs cronsim (totals) | vs croniter (median per expr) | vs cronsim (median per expr) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    celery_rows = []
    for peer, expressions in sets.items():
        for tz in ZONES:
            for way, measure in (("object reused", reused), ("construction + first fire", constructed)):
                results = [measure(expr, tz, number, repeat) for expr in expressions]
                print(summary(f"{peer}'s, {tz}, {way}", results), flush=True)
                with_celery = [r for r in results if "celery" in r]
                if with_celery:
                    celery_rows.append((f"{peer}'s, {tz}", len(with_celery),
                                        sum(r["beatkeeper"] for r in with_celery) / len(with_celery),
                                        sum(r["celery"] for r in with_celery) / len(with_celery)))
        print_load(f"after {peer}'s set")
    print("\nCelery's crontab (construction + remaining_estimate) on the expressions it accepts:\n")
    print("| set, zone | expressions | beatkeeper us | celery us | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for label, count, ours, celery in celery_rows:
        print(f"| {label} | {count} | {ours:.1f} | {celery:.1f} | {celery / ours:.2f}x |")
    print_load("end")


if __name__ == "__main__":
    main()
