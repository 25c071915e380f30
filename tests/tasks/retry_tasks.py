"""Tasks whose failures an entry's ``retry`` policy retries (test-only)."""
from __future__ import annotations

from tasks.application import app
from tasks.infra.redis_client import app_redis


@app.task(name="tests.retry.flaky", overlap="allow")
def flaky(key: str, failures: int) -> int:
    """Times out ``failures`` times, then succeeds; returns the attempt that succeeded."""
    attempt = app_redis(app).incr(key)
    if attempt <= failures:
        raise TimeoutError(f"attempt {attempt} timed out")
    return attempt


@app.task(name="tests.retry.broken", overlap="allow")
def broken(key: str) -> None:
    app_redis(app).incr(key)
    raise ValueError(f"{key} is broken for good")
