"""What the benchmarks that start their own worker processes share."""
from __future__ import annotations

import time


def wait_ready(app, hostname: str, timeout_s: float = 60) -> None:
    """Return once the worker ``hostname`` answers a ping; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if app.control.ping(destination=[hostname], timeout=0.5):
            return
    raise RuntimeError(f"worker {hostname} did not answer within {timeout_s}s")
