"""What a run must respect: its overlap policy, lock TTL and key, runtime bounds.

A run's policy is resolved field by field, first source that sets a field wins:

1. the schedule entry, as beat sent it in the ``beatkeeper_policy`` header (scheduled runs);
2. the schedule entry, as beat published it for the task name (so a hand-triggered run,
   ``celery -A tasks call`` or ``send_task``, takes the same lock as a scheduled one);
3. the task's own declaration: ``@app.task(overlap="skip", lock_ttl_s=60, lock_key=["feed_id"],
   max_runtime_s=600, time_limit=900)``;
4. the defaults: ``skip``, a 60 s lock TTL, the lock keyed on the task name and all its arguments.

``lock_key`` names the arguments that identify the job: ``["feed_id"]`` makes one lock per
feed, ``[]`` one lock for the whole task. Left unset, every argument counts, so the same job
never overlaps itself while a fan-out over different arguments is not serialised.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, Mapping, Sequence

import redis

from schedules.entry import OverlapPolicy  # one enum for config and enforcement

LOCK_PREFIX = "beatkeeper:lock:"
PUBLISHED_POLICIES_KEY = "beatkeeper:policies"  # hash: task name -> JSON of the entry's policy fields

DEFAULT_LOCK_TTL_S = 60.0


class PolicyError(ValueError):
    """A policy field that cannot be used; carries where it came from."""

    def __init__(self, task: str, field: str, value: Any, problem: str):
        super().__init__(f"task {task!r}: {field}={value!r}: {problem}")
        self.task = task
        self.field = field
        self.value = value
        self.problem = problem


@dataclass(frozen=True)
class RunPolicy:
    """The resolved policy of one run."""

    overlap: OverlapPolicy = OverlapPolicy.SKIP
    lock_ttl_s: float = DEFAULT_LOCK_TTL_S
    lock_key: tuple[str, ...] | None = None  # argument names; None: all arguments
    max_runtime_s: float | None = None  # longer runs are recorded as long_run, not killed
    time_limit_s: float | None = None  # Celery's hard limit, sent as a message option

    def as_fields(self) -> dict[str, Any]:
        """The JSON-ready fields (for the header and the published hash)."""
        data = asdict(self)
        data["overlap"] = self.overlap.value
        data["lock_key"] = None if self.lock_key is None else list(self.lock_key)
        return data

    def apply_async_options(self) -> dict[str, Any]:
        """Message options beat must add: the hard time limit is enforced by the worker's pool."""
        return {} if self.time_limit_s is None else {"time_limit": self.time_limit_s}


POLICY_FIELDS = tuple(f.name for f in fields(RunPolicy))
# Declaration spellings on @app.task: the short names are accepted as aliases.
_DECLARED_ALIASES = {"lock_ttl": "lock_ttl_s", "max_runtime": "max_runtime_s", "time_limit": "time_limit_s"}


def declared_fields(task: Any) -> dict[str, Any]:
    """The policy fields a task class declares (attributes left None are not declared)."""
    name = getattr(task, "name", "?")
    declared: dict[str, Any] = {}
    for attr in POLICY_FIELDS + tuple(_DECLARED_ALIASES):
        value = getattr(task, attr, None)
        if value is None:
            continue
        field = _DECLARED_ALIASES.get(attr, attr)
        if field in declared and declared[field] != value:
            raise PolicyError(name, field, value, f"declared twice with different values ({declared[field]!r})")
        declared[field] = value
    return declared


def resolve_policy(task_name: str, *layers: Mapping[str, Any] | None, max_lock_ttl_s: float) -> RunPolicy:
    """Merge policy layers, highest precedence first, over the defaults; validate the result."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for field, value in (layer or {}).items():
            if field in POLICY_FIELDS and value is not None and field not in merged:
                merged[field] = value
    return _validated(task_name, merged, max_lock_ttl_s=max_lock_ttl_s)


def _validated(task: str, raw: Mapping[str, Any], *, max_lock_ttl_s: float) -> RunPolicy:
    policy = RunPolicy()
    if "overlap" in raw:
        try:
            policy = replace(policy, overlap=OverlapPolicy(raw["overlap"]))
        except ValueError:
            choices = ", ".join(p.value for p in OverlapPolicy)
            raise PolicyError(task, "overlap", raw["overlap"], f"must be one of {choices}") from None
    if "lock_ttl_s" in raw:
        ttl_s = _positive(task, "lock_ttl_s", raw["lock_ttl_s"])
        if ttl_s > max_lock_ttl_s:
            raise PolicyError(task, "lock_ttl_s", ttl_s, f"exceeds max_lock_ttl_s={max_lock_ttl_s}")
        policy = replace(policy, lock_ttl_s=ttl_s)
    if "lock_key" in raw:
        key = raw["lock_key"]
        if isinstance(key, str) or not all(isinstance(k, str) and k for k in key):
            raise PolicyError(task, "lock_key", key, "must be a list of argument names")
        policy = replace(policy, lock_key=tuple(key))
    for field in ("max_runtime_s", "time_limit_s"):
        if field in raw:
            policy = replace(policy, **{field: _positive(task, field, raw[field])})
    return policy


def _positive(task: str, field: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PolicyError(task, field, value, "must be a number of seconds") from None
    if not number > 0:
        raise PolicyError(task, field, value, "must be > 0")
    return number


def lock_key_for(task_name: str, policy: RunPolicy, *, signature: inspect.Signature | None,
                 args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """The Redis key of a run's lock: the task name plus the arguments that identify the job."""
    bound = _bound_arguments(signature, args, kwargs)
    if policy.lock_key is None:
        canonical = json.dumps(bound, sort_keys=True, default=str, separators=(",", ":"))
        return f"{LOCK_PREFIX}{task_name}:args={hashlib.sha1(canonical.encode()).hexdigest()[:16]}"
    parts = []
    for name in policy.lock_key:
        if name not in bound:
            raise PolicyError(task_name, "lock_key", list(policy.lock_key), f"the run has no argument {name!r}")
        parts.append(f"{name}={json.dumps(bound[name], sort_keys=True, default=str)}")
    return LOCK_PREFIX + ":".join([task_name, *parts])


def _bound_arguments(signature: inspect.Signature | None, args: Sequence[Any],
                     kwargs: Mapping[str, Any]) -> dict[str, Any]:
    # Binding maps f(1) and f(feed_id=1) to the same key; an unbindable call keeps its raw
    # shape (the body will fail on it anyway).
    if signature is not None:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            pass
        else:
            bound.apply_defaults()
            return dict(bound.arguments)
    return {"args": list(args), **kwargs}


def publish_entry_policies(client: redis.Redis, policies: Mapping[str, RunPolicy]) -> None:
    """Publish each scheduled task's entry policy (beat calls this when it loads the schedule).

    Replaces what was published before, atomically. When several entries name one task,
    the caller picks the policy that task's hand-triggered runs must follow.
    """
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(PUBLISHED_POLICIES_KEY)
        if policies:
            pipe.hset(PUBLISHED_POLICIES_KEY,
                      mapping={task: json.dumps(p.as_fields()) for task, p in policies.items()})
        pipe.execute()


class PublishedPolicies:
    """A worker's cached view of the published entry policies, re-read every ``refresh_s``."""

    def __init__(self, client: redis.Redis, *, refresh_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.refresh_s = refresh_s
        self.clock = clock
        self._by_task: dict[str, dict[str, Any]] = {}
        self._read_at: float | None = None

    def fields_for(self, task_name: str) -> dict[str, Any]:
        now = self.clock()
        if self._read_at is None or now - self._read_at >= self.refresh_s:
            raw = self.client.hgetall(PUBLISHED_POLICIES_KEY)
            self._by_task = {_text(k): json.loads(v) for k, v in raw.items()}
            self._read_at = now
        return self._by_task.get(task_name, {})


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
