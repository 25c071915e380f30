"""How long do ``validate_schedule`` and ``build_plan`` take on a 10,000-entry schedule, and how much memory?

The schedule mixes every kind: intervals (1 min to 1 day), cron in eight zones (fixed-time
and wildcard, several with DST), windows, and one-offs. Timings come from a run without
tracing; peak Python memory from a second run under tracemalloc; ru_maxrss is the whole
process at the end. Prints a Markdown table.

    .venv/bin/python bench/bench_validate_plan.py [--entries 10000] [--days 7] [--seed 1]
"""
from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import sys
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.load import print_load_at_start_and_end  # noqa: E402

from schedules.plan import build_plan  # noqa: E402
from schedules.settings import ScheduleSettings  # noqa: E402
from schedules.validate import validate_schedule  # noqa: E402

NOW = datetime(2026, 9, 28, tzinfo=timezone.utc)  # the plan week holds Sydney's and Santiago's changes
ZONES = ["UTC", "Europe/London", "America/New_York", "Australia/Sydney", "Asia/Tokyo", "America/Santiago",
         "Australia/Lord_Howe", "Asia/Kolkata"]
EVERY_S = [60, 300, 600, 900, 1800, 3600, 6 * 3600, 86400]
CRONS = ["30 2 * * *", "0 9-17 * * mon-fri", "*/5 * * * *", "15 1,13 * * *", "0 0 1 * *", "*/15 8-18 * * *",
         "45 23 * * sun", "0 3 * * 1-5"]
WINDOWS = [
    [{"hours": "7-9,17-19", "days": "mon-fri", "every": "2m"}, {"every": "15m"}],
    [{"days": "sat,sun", "every": "1h"}, {"every": "10m"}],
    [{"hours": "0-5", "every": "30m"}, {"every": "5m"}],
]


# The generated entries share 1,000 task names: past 10,000 entries a task's projected runs exceed the
# default budget (checked all the same, and passed).
SETTINGS = ScheduleSettings(max_runs_per_hour=100_000_000)


def build_schedule(entries: int, seed: int, *, distinct: bool = False) -> dict:
    """``entries`` entries: 40% every, 30% cron, 20% windows, 10% at; 1000 tasks share them.

    ``distinct`` makes (nearly) every schedule unique, defeating the plan's sharing of work
    between equal triggers: the worst case, not the usual one.
    """
    rng = random.Random(seed)
    schedule = {}
    for i in range(entries):
        entry = {"task": f"bench.task_{i % 1000}"}
        roll = rng.random()
        if roll < 0.4:
            entry["every"] = rng.choice(EVERY_S)
            entry["phase"] = rng.randrange(3600 if distinct else 60)
        elif roll < 0.7:
            cron = rng.choice(CRONS)
            if distinct:  # a minute of its own: the same rate, a different trigger
                minute, rest = cron.split(" ", 1)
                cron = f"{rng.randrange(5)}-59/5 {rest}" if minute.startswith("*/") else f"{rng.randrange(60)} {rest}"
            entry["cron"] = cron
            entry["timezone"] = rng.choice(ZONES)
        elif roll < 0.9:
            windows = [dict(w) for w in rng.choice(WINDOWS)]
            if distinct:  # whole minutes keep every window change >= 60 s apart (the guard checks)
                every_min = rng.randrange(2, 31)
                windows[0]["every"] = f"{every_min}m"
                windows[0]["phase"] = 60 * rng.randrange(every_min)
            entry["windows"] = windows
            entry["timezone"] = rng.choice(ZONES)
        else:
            entry["at"] = (NOW + timedelta(minutes=rng.randrange(60 * 24 * 30))).replace(tzinfo=None).isoformat()
            entry["timezone"] = rng.choice(ZONES)
        if rng.random() < 0.3:
            entry["expected_runtime"] = rng.choice(["2s", "30s", "5m"])
        schedule[f"entry-{i:05d}"] = entry
    return schedule


def run_once(raw: dict, days: float, max_fires: int | None) -> dict:
    settings = SETTINGS
    timings = {}
    began = time.perf_counter()
    schedule = validate_schedule(raw, settings=settings, registered_tasks=None, now=NOW)
    timings["validate_schedule"] = time.perf_counter() - began
    began = time.perf_counter()
    plan = build_plan(schedule, start=NOW, end=NOW + timedelta(days=days), cost_per_worker_hour=0.05)
    timings["build_plan"] = time.perf_counter() - began
    began = time.perf_counter()
    text = json.dumps(plan.to_json(max_fires=max_fires))
    timings["plan.to_json + dumps"] = time.perf_counter() - began
    timings["fires"] = sum(p.fire_count for p in plan.entries.values())
    timings["json_mb"] = len(text) / 1e6
    timings["warnings"] = len(schedule.warnings)
    return timings


def peak_traced_mb(raw: dict, days: float) -> tuple[float, float]:
    """Peak traced memory (MB) of validate alone, then of validate + build_plan (no JSON)."""
    gc.collect()
    tracemalloc.start()
    schedule = validate_schedule(raw, settings=SETTINGS, registered_tasks=None, now=NOW)
    validate_peak = tracemalloc.get_traced_memory()[1]
    build_plan(schedule, start=NOW, end=NOW + timedelta(days=days), cost_per_worker_hour=0.05)
    plan_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return validate_peak / 1e6, plan_peak / 1e6


def cli_seconds(raw: dict, days: float) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``beatkeeper check`` and ``beatkeeper plan --days`` on ``raw`` as a
    user runs them: fresh processes, the schedule in a JSON file, imports included."""
    import json
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "schedule.json"
        if len(raw) > 20_000:  # over the 4 MiB a schedule file may hold as JSON: code that builds it
            from mixed_schedule import write_schedule_file  # the same entries, made runnable alike (seed 1)
            path = write_schedule_file(Path(workdir) / "mixed_schedule.py", len(raw))
        runnable = {}
        for name, entry in raw.items():  # a registered task; one-offs at real dates would be past
            entry = {**entry, "task": "beatkeeper.heartbeat"}
            if entry.pop("at", None):
                entry.pop("timezone", None)
                entry["every"] = 86400
            runnable[name] = entry
        if path.suffix == ".json":
            path.write_text(json.dumps(runnable))
        cli = str(Path(sys.executable).with_name("beatkeeper"))
        env = {**os.environ, "BEATKEEPER_DATA_DIR": workdir, "BEATKEEPER_MAX_RUNS_PER_HOUR": "100000000"}
        seconds, cpu_s = [], []
        for args in (["check", "--config", str(path)], ["plan", "--config", str(path), "--days", str(days)]):
            began, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            done = subprocess.run([cli, *args], capture_output=True, env=env)
            seconds.append(time.perf_counter() - began)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu_s.append(after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime)
            if done.returncode != 0:
                raise SystemExit(f"beatkeeper {args[0]} failed: {done.stderr.decode()[-500:]}")
    return seconds, cpu_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--distinct", action="store_true", help="make every schedule unique (worst case)")
    parser.add_argument("--cli", action="store_true", help="also time `beatkeeper check` and `plan` in fresh processes")
    parser.add_argument("--full-json", action="store_true",
                        help="list every fire in the JSON (10,000 entries: ~10 M fires, minutes, GBs)")
    args = parser.parse_args()
    print_load_at_start_and_end()
    raw = build_schedule(args.entries, args.seed, distinct=args.distinct)
    max_fires = None if args.full_json else 20
    result = run_once(raw, args.days, max_fires)
    validate_mb, plan_mb = peak_traced_mb(raw, args.days)
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    kind = "distinct schedules" if args.distinct else "schedules drawn from a small set"
    listing = "every fire" if args.full_json else f"at most {max_fires} fires per entry"
    print(f"{args.entries} entries ({kind}), plan over {args.days:g} days, JSON lists {listing}, "
          f"Python {sys.version.split()[0]}\n")
    print("| measure | value |")
    print("|---|---|")
    for stage in ("validate_schedule", "build_plan", "plan.to_json + dumps"):
        print(f"| {stage} | {result[stage]:.2f} s |")
    print(f"| fires in the plan (counted) | {result['fires']:,} |")
    print(f"| plan JSON size | {result['json_mb']:.1f} MB |")
    print(f"| warnings | {result['warnings']:,} |")
    print(f"| peak traced memory, validate | {validate_mb:.0f} MB |")
    print(f"| peak traced memory, validate + build_plan | {plan_mb:.0f} MB |")
    print(f"| ru_maxrss (whole process) | {maxrss_mb:.0f} MB |")
    if args.cli:
        (check_s, plan_s), (check_cpu, plan_cpu) = cli_seconds(raw, args.days)
        print(f"| `beatkeeper check` (fresh process): wall / CPU | {check_s:.2f} s / {check_cpu:.2f} s |")
        print(f"| `beatkeeper plan --days {args.days:g}` (fresh process): wall / CPU | "
              f"{plan_s:.2f} s / {plan_cpu:.2f} s |")
        print(f"| check + plan: wall / CPU | {check_s + plan_s:.2f} s / {check_cpu + plan_cpu:.2f} s |")


if __name__ == "__main__":
    main()
