"""``make bench``: every benchmark in bench/, at sizes that finish within 15 minutes on the
project's 2-core machine, with the load average and the wall time of each printed beside it.

    .venv/bin/python bench/run_all.py [--quick]

``--quick`` is a smoke run (a minute or two): its figures are not the ones BENCHMARKS.md reports.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import print_load  # noqa: E402

# script -> (arguments of the standard run, arguments of the quick run)
RUNS: dict[str, tuple[list[str], list[str]]] = {
    "bench_next_fire.py": ([], ["--quick"]),
    "bench_validate_plan.py": ([], ["--entries", "1000"]),
    "bench_beat.py": (["--lateness-s", "20"], ["--burst-only"]),
    "bench_lock.py": (["--rounds", "5"], ["--tasks", "200", "--rounds", "2", "--pings", "500"]),  # median of 5 rounds
    "bench_history.py": (["--tasks", "1000", "--rounds", "5"], ["--tasks", "200", "--rounds", "2"]),
    "bench_gtfs.py": (["--stop-times", "300000"], ["--stop-times", "20000"]),
    "bench_dashboard.py": ([], ["--rows", "5000", "--repeat", "3"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of every benchmark")
    parser.add_argument("only", nargs="*", help="run only these scripts (e.g. bench_beat.py)")
    args = parser.parse_args()
    began = time.monotonic()
    took: dict[str, float] = {}
    for script, (standard, quick) in RUNS.items():
        if args.only and script not in args.only:
            continue
        print(f"\n## {script} {' '.join(quick if args.quick else standard)}", flush=True)
        print_load("before")
        started = time.monotonic()
        subprocess.run([sys.executable, str(ROOT / "bench" / script), *(quick if args.quick else standard)],
                       check=True, cwd=ROOT)
        took[script] = time.monotonic() - started
        print_load(f"after {took[script]:.0f} s")
    print("\n| script | wall s |\n|---|---:|")
    for script, seconds in took.items():
        print(f"| {script} | {seconds:.0f} |")
    print(f"| all | {time.monotonic() - began:.0f} |")


if __name__ == "__main__":
    main()
