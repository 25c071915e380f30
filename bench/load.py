"""The machine's load, printed beside every benchmark run: figures taken on a busy machine read
differently from a quiet one's, so each table says which it was."""
from __future__ import annotations

import atexit
import os


def load_average() -> str:
    """``load 1/5/15 min: a / b / c on N cores`` for the moment it is called."""
    one, five, fifteen = os.getloadavg()
    return f"load 1/5/15 min: {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} cores"


def print_load(label: str = "") -> None:
    """One line with the load average, flushed at once (benchmarks print while they run)."""
    print(f"[{label + ': ' if label else ''}{load_average()}]", flush=True)


def print_load_at_start_and_end() -> None:
    """The load now and again when the benchmark's process ends."""
    print_load("start")
    atexit.register(print_load, "end")
