"""Test-only *plain* tasks: no schedule entry names them and they declare no policy, like a web
app's ``send_email``. Each counts its executed bodies in Redis and how many ran at once."""
from __future__ import annotations

import time

from tasks.application import app
from tasks.infra.redis_client import app_redis


def keys(key: str) -> dict[str, str]:
    return {name: f"plain:{key}:{name}" for name in ("ran", "active", "most_at_once")}


@app.task(name="tests.plain.send_email")
def send_email(to: str, hold_s: float = 0.0) -> str:
    """Plain: two calls with the same arguments may well meet, and both must run."""
    client = app_redis(app)
    k = keys(to)
    active = client.incr(k["active"])
    client.eval("if tonumber(redis.call('get', KEYS[1]) or 0) < tonumber(ARGV[1]) then "
                "redis.call('set', KEYS[1], ARGV[1]) end", 1, k["most_at_once"], active)
    if hold_s:
        time.sleep(hold_s)  # the work: a call that takes this long
    with client.pipeline(transaction=False) as pipe:
        pipe.decr(k["active"])
        pipe.incr(k["ran"])
        pipe.execute()
    return to
