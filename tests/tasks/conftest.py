"""Fixtures for the task-side tests: probes in Redis, middleware lists, subprocess workers."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.servers import wait_until

GUARDED_MODULES = "tests.tasks.guarded_tasks"


@pytest.fixture
def guard_only(app):
    """Only the middlewares under test (overlap, long-run) and an empty published-policy cache;
    the app's previous list is restored afterwards."""
    from tests.app_wiring import set_published_policies
    from tests.app_wiring import installed_middlewares, set_middlewares
    from tasks.policy import PublishedPolicies
    from tasks.infra.redis_client import app_redis

    previous = installed_middlewares(app)
    set_middlewares(app, guard_middlewares(app))
    set_published_policies(app, PublishedPolicies(app_redis(app)))
    yield
    if previous is None:
        set_middlewares(app, None)
    else:
        set_middlewares(app, previous)


def publish_entry(entry: str, task, *, retry=None, **policy) -> None:
    """Publish, as beat does at start, that schedule entry ``entry`` runs ``task`` with ``policy``
    and the retry policy ``retry`` (a ``RetrySpec``; the worker takes an entry's policies from
    there only, never from message headers)."""
    from tasks import app
    from tasks.policy import PUBLISHED_ENTRY_POLICIES_KEY, published_entry
    from tasks.infra.redis_client import app_redis

    app_redis(app).hset(PUBLISHED_ENTRY_POLICIES_KEY, entry,
                        published_entry(getattr(task, "name", task), policy, retry))


def guard_middlewares(app) -> list:
    """The overlap and long-run middlewares, in their standard order."""
    from tasks.guard.longrun import LongRunMiddleware
    from tasks.guard.overlap import OverlapMiddleware
    from tasks.infra.redis_client import app_redis

    client = app_redis(app)
    return [OverlapMiddleware(client), LongRunMiddleware(client)]


def call_guarded(task, *args, task_id: str | None = None, request: dict | None = None, **kwargs) -> str:
    """Run ``task`` through the guarded path in this thread, as the worker's tracer does
    (a request pushed, then ``task(...)``); returns 'ran' or 'skipped'."""
    import uuid

    from celery.app.task import Context
    from celery.exceptions import Ignore

    task.request_stack.push(Context(id=task_id or uuid.uuid4().hex, called_directly=False, is_eager=True,
                                    retries=0, hostname="test", delivery_info={}, args=args, kwargs=kwargs,
                                    **(request or {})))
    try:
        task(*args, **kwargs)
        return "ran"
    except Ignore:
        return "skipped"
    finally:
        task.request_stack.pop()


class Probe:
    """Reads what the probe tasks recorded about ``key`` (see tests/tasks/guarded_tasks.py)."""

    def __init__(self, client, key: str):
        from tests.tasks.guarded_tasks import probe_keys

        self.client = client
        self.key = key
        self.keys = probe_keys(key)

    def ran(self) -> int:
        return int(self.client.get(self.keys["ran"]) or 0)

    def violations(self) -> int:
        return int(self.client.get(self.keys["violations"]) or 0)

    def log(self) -> list[dict]:
        return [json.loads(raw) for raw in self.client.lrange(self.keys["log"], 0, -1)]

    def entered(self) -> list[dict]:
        return [e for e in self.log() if e["event"] == "enter"]

    def block(self) -> None:
        self.client.set(self.keys["block"], 1, ex=60)

    def unblock(self) -> None:
        self.client.delete(self.keys["block"])

    def forget_killed_run(self) -> None:
        """A run killed inside the body never leaves it: take it out of the active count."""
        self.client.decr(self.keys["active"])

    def intervals(self) -> dict[str, tuple[float, float]]:
        """'task id:retries:pid' -> (enter, exit) for runs that finished."""
        spans: dict[str, list[float]] = {}
        for e in self.log():
            spans.setdefault(f"{e['task_id']}:{e.get('retries', 0)}:{e['pid']}", []).append(e["at"])
        return {tid: (min(ts), max(ts)) for tid, ts in spans.items() if len(ts) == 2}


@pytest.fixture
def probe_for(redis_client):
    return lambda key: Probe(redis_client, key)


def lock_key_of(task, *args, **kwargs) -> str:
    """The lock key a run of ``task`` with these arguments takes under its declared policy."""
    import inspect

    from tasks.policy import declared_fields, lock_key_for, resolve_policy

    policy = resolve_policy(task.name, declared_fields(task), max_lock_ttl_s=3600)
    return lock_key_for(task.name, policy, signature=inspect.signature(task.run), args=args, kwargs=kwargs)


def start_worker_process(processes, *args: str, name: str, timeout_s: float = 30):
    """A real ``celery -A tasks worker`` subprocess that knows the test tasks; returns once it is ready."""
    proc = processes.celery("worker", "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
                            "--without-heartbeat", "--loglevel", "INFO", *args, name=name,
                            env={"BEATKEEPER_TASK_MODULES": GUARDED_MODULES})
    wait_until(lambda: _ready(proc), timeout_s=timeout_s, what=f"worker {name} ready")
    return proc


def _ready(proc) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"worker exited early:\n{Path(proc.log_path).read_text()[-3000:]}")
    return b" ready." in Path(proc.log_path).read_bytes()


def events_of(client, kind: str) -> list:
    from monitoring.events import read_events

    return read_events(client, kind=kind)


def elapsed_since(t0: float) -> float:
    return time.monotonic() - t0
