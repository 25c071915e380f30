"""The mixed schedule beat is benchmarked on (bench_validate_plan's entries, all runnable now),
and a ``.py`` schedule file that builds it when loaded: 100,000 entries are ~10 MB of JSON, over
the 4 MiB a schedule file may hold (``schedules.limits``), while the code that makes them is a
few lines."""
from __future__ import annotations

from pathlib import Path

from bench_validate_plan import build_schedule

TASK = "beatkeeper.heartbeat"


def mixed(entries: int) -> dict:
    raw = build_schedule(entries, seed=1)
    for entry in raw.values():
        entry["task"] = TASK
        if entry.pop("at", None):  # one-offs would fall in the past: make them daily intervals
            entry.pop("timezone")
            entry["every"] = 86400
    return raw


def write_schedule_file(path: Path, entries: int) -> Path:
    """A ``.py`` schedule file at ``path`` whose ``SCHEDULE`` is ``mixed(entries)``."""
    bench = Path(__file__).resolve().parent
    path.write_text(f"import sys\nsys.path.insert(0, {str(bench)!r})\nfrom mixed_schedule import mixed\n"
                    f"SCHEDULE = mixed({entries})\n")
    return path
