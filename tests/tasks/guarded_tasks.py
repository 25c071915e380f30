"""Test-only tasks on the real app; subprocess workers load them with
``BEATKEEPER_TASK_MODULES=tests.tasks.guarded_tasks``.

Each probe records its own execution in Redis so overlap is checked by the task itself:
``probe:<key>:active`` counts runs inside the body (a value above 1 is an overlap and bumps
``probe:<key>:violations``), ``probe:<key>:ran`` counts completed bodies and
``probe:<key>:log`` lists enter/exit records (JSON: event, task_id, pid, at, fence).
"""
from __future__ import annotations

import json
import os
import time

from tasks import headers
from tasks.application import app
from tasks.locks.fencing import StaleFencingToken, fenced_set
from tasks.infra.redis_client import app_redis

BLOCK_LIMIT_S = 30.0  # a blocked probe never outlives a test run


def probe_keys(key: str) -> dict[str, str]:
    return {name: f"probe:{key}:{name}" for name in ("active", "violations", "ran", "log", "block")}


def _record(task, key: str, event: str) -> None:
    client = app_redis(app)
    entry = {"event": event, "task_id": task.request.id, "pid": os.getpid(), "at": time.time(),
             "fence": getattr(task.request, "fencing_token", None), "retries": task.request.retries,
             "entry": headers.entry_of(task.request)}
    client.rpush(probe_keys(key)["log"], json.dumps(entry))


def _probe_body(task, key: str, hold_s: float, record: bool) -> int:
    client = app_redis(app)
    keys = probe_keys(key)
    if client.incr(keys["active"]) != 1:
        client.incr(keys["violations"])
    if record:
        _record(task, key, "enter")
    deadline = time.monotonic() + BLOCK_LIMIT_S
    while client.exists(keys["block"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    if hold_s:
        time.sleep(hold_s)  # the workload: a run that takes this long
    if record:
        _record(task, key, "exit")
    with client.pipeline(transaction=False) as pipe:
        pipe.decr(keys["active"])
        pipe.incr(keys["ran"])
        pipe.execute()
    return os.getpid()


@app.task(name="tests.guarded.probe", bind=True, overlap="skip", lock_key=["key"])
def probe(self, key: str, hold_s: float = 0.0, record: bool = False) -> int:
    """A skip-policy probe, one lock per ``key``."""
    return _probe_body(self, key, hold_s, record)


@app.task(name="tests.guarded.buffered_probe", bind=True, overlap="buffer_one", lock_key=["key"])
def buffered_probe(self, key: str, hold_s: float = 0.0, record: bool = False) -> int:
    return _probe_body(self, key, hold_s, record)


@app.task(name="tests.guarded.allow_probe", bind=True, overlap="allow")
def allow_probe(self, key: str, hold_s: float = 0.0, record: bool = False) -> int:
    return _probe_body(self, key, hold_s, record)


@app.task(name="tests.guarded.undeclared_probe", bind=True)
def undeclared_probe(self, key: str, hold_s: float = 0.0, record: bool = False) -> int:
    """No declaration: defaults (skip, locked on the task name and all arguments)."""
    return _probe_body(self, key, hold_s, record)


@app.task(name="beatkeeper.singleton.serial_probe", bind=True, lock_key=["key"])
def serial_probe(self, key: str, hold_s: float = 0.0) -> int:
    """Routed to the singleton queue by its name (celeryconfig.task_routes)."""
    return _probe_body(self, key, hold_s, record=True)


@app.task(name="tests.guarded.retry_once", bind=True, lock_key=["key"])
def retry_once(self, key: str) -> str:
    """Asks for one immediate retry, then records that the retry ran."""
    _record(self, key, "enter")
    if self.request.retries == 0:
        retry = self.retry(countdown=0, max_retries=1, throw=False)
        time.sleep(0.3)  # still holding the lock while the retry is already being delivered
        raise retry
    _probe_body(self, key, 0.0, record=False)
    return "retried"


@app.task(name="tests.guarded.fenced_writer", bind=True, lock_key=["key"])
def fenced_writer(self, key: str, value: str) -> str:
    """Writes ``value`` under its fencing token once ``probe:<key>:block`` is gone; records refusals."""
    client = app_redis(app)
    keys = probe_keys(key)
    _record(self, key, "enter")
    deadline = time.monotonic() + BLOCK_LIMIT_S
    while client.exists(keys["block"] + ":" + value) and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        fenced_set(client, f"probe:{key}:value", value, fencing_token=self.request.fencing_token)
    except StaleFencingToken as exc:
        client.rpush(f"probe:{key}:refused", json.dumps({"value": value, "token": exc.token,
                                                         "highest": exc.highest}))
        return "refused"
    return "written"


@app.task(name="tests.guarded.time_limited", bind=True, lock_key=["key"], lock_ttl_s=1.0,
          max_runtime_s=0.3, time_limit=1.5)
def time_limited(self, key: str, hold_s: float) -> int:
    return _probe_body(self, key, hold_s, record=True)
