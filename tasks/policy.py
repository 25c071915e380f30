"""What a run must respect: its overlap policy, lock TTL and key, runtime bounds.

A run's policy is resolved field by field, first source that sets a field wins:

1. the schedule entry the run names, as beat published it, when beat published that entry
   for this very task (scheduled runs);
2. the schedule entry, as beat published it for the task name (so a hand-triggered run,
   ``celery -A tasks call`` or ``send_task``, takes the same lock as a scheduled one);
3. the task's own declaration: ``@app.task(overlap="skip", lock_ttl_s=60, lock_key=["feed_id"],
   max_runtime_s=600, time_limit=900)``;
4. the defaults: ``skip``, a 60 s lock TTL, the lock keyed on the task name and all its arguments.

Policy headers on the message are ignored: anyone can send one. Every field is checked
by the same converters as a schedule entry's value (``schedules.entry.KEYS``) and the same
lock TTL cap rule (``schedules.guards``); a field that fails makes the run a recorded failure.

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
from typing import Any, Callable, Iterable, Mapping, Sequence

import redis

from monitoring.namespace import namespaced
from schedules.entry import KEYS, OverlapPolicy, RetrySpec  # one set of converters for config and enforcement
from schedules.errors import InvalidValue
from schedules.guards import lock_ttl_problem

LOCK_PREFIX = namespaced("beatkeeper:lock:")
PUBLISHED_POLICIES_KEY = namespaced("beatkeeper:policies")  # hash: task name -> JSON of the entry's policy fields
PUBLISHED_ENTRY_POLICIES_KEY = namespaced("beatkeeper:policies:entries")  # hash: entry -> JSON {task, policy, retry}
SCHEDULED_TASKS_KEY = namespaced("beatkeeper:scheduled_tasks")  # set: the task names the schedule's entries run
PUBLISHED_BUDGETS_KEY = namespaced("beatkeeper:budgets")  # hash: task name -> runs per hour; "*" -> the default
DEFAULT_BUDGET_FIELD = "*"

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


#: RunPolicy field -> the schedule entry key whose converter checks it: one rule for ``check``,
#: beat and the worker (a declaration or a published policy is checked like an entry's value).
_ENTRY_KEY_OF = {key.attribute: name for name, key in KEYS.items() if key.attribute in POLICY_FIELDS}


def _validated(task: str, raw: Mapping[str, Any], *, max_lock_ttl_s: float) -> RunPolicy:
    converted: dict[str, Any] = {}
    for field, value in raw.items():
        try:
            converted[field] = KEYS[_ENTRY_KEY_OF[field]].convert(value)
        except InvalidValue as exc:
            raise PolicyError(task, field, value, exc.problems[0][1]) from None
    if "lock_ttl_s" in converted:
        problem = lock_ttl_problem(converted["lock_ttl_s"], max_lock_ttl_s=max_lock_ttl_s)
        if problem is not None:
            raise PolicyError(task, "lock_ttl_s", raw["lock_ttl_s"], problem)
    if "lock_key" in converted:
        converted["lock_key"] = tuple(converted["lock_key"])
    return replace(RunPolicy(), **converted)


def policy_problem(task: str, raw: Mapping[str, Any], *, max_lock_ttl_s: float) -> PolicyError | None:
    """None when ``raw`` is a usable policy, else the error the worker would fail the run with."""
    try:
        _validated(task, {k: v for k, v in raw.items() if v is not None}, max_lock_ttl_s=max_lock_ttl_s)
    except PolicyError as exc:
        return exc
    return None


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


def published_entry(task: str, policy: Mapping[str, Any], retry: RetrySpec | None = None) -> str:
    """What beat publishes for one entry: its task (the only task it lends anything to), its
    policy fields and its retry policy (None: the task's own declaration applies)."""
    return json.dumps({"task": task, "policy": dict(policy), "retry": retry.as_fields() if retry else None})


def publish_entry_policies(client: redis.Redis, policies: Mapping[str, RunPolicy], *,
                           entries: Mapping[str, tuple[str, Mapping[str, Any], RetrySpec | None]] | None = None,
                           budgets: Mapping[str, int] | None = None, default_budget: int | None = None) -> None:
    """Publish what workers enforce (beat calls this when it loads the schedule), atomically
    replacing what was published before:

    - ``policies``: per task, the entry policy its hand-triggered runs follow (when several
      entries name one task, the caller picks it);
    - ``entries``: per entry, ``(task, policy fields, retry policy)``: what a run naming it follows;
    - ``budgets``/``default_budget``: runs per hour per task (``schedules.guards.task_budgets``)
      and for tasks with none.
    """
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(PUBLISHED_POLICIES_KEY, PUBLISHED_ENTRY_POLICIES_KEY, PUBLISHED_BUDGETS_KEY)
        if policies:
            pipe.hset(PUBLISHED_POLICIES_KEY,
                      mapping={task: json.dumps(p.as_fields()) for task, p in policies.items()})
        if entries:
            pipe.hset(PUBLISHED_ENTRY_POLICIES_KEY, mapping={
                name: published_entry(*published) for name, published in entries.items()})
        budget_map = {task: int(runs) for task, runs in (budgets or {}).items()}
        if default_budget is not None:
            budget_map[DEFAULT_BUDGET_FIELD] = int(default_budget)
        if budget_map:
            pipe.hset(PUBLISHED_BUDGETS_KEY, mapping=budget_map)
        pipe.execute()


def publish_scheduled_tasks(client: redis.Redis, task_names: Iterable[str]) -> None:
    """Replace the published set of scheduled task names, atomically (beat, at start)."""
    names = sorted(set(task_names))
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(SCHEDULED_TASKS_KEY)
        if names:
            pipe.sadd(SCHEDULED_TASKS_KEY, *names)
        pipe.execute()


class PublishedPolicies:
    """A worker's cached view of what beat published, re-read every ``refresh_s``.

    The only source of an entry's policy, its retry policy and a task's budget on the worker: a
    message's own headers are never trusted for any (anyone can send a message)."""

    def __init__(self, client: redis.Redis, *, refresh_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.refresh_s = refresh_s
        self.clock = clock
        self._by_task: dict[str, dict[str, Any]] = {}
        self._by_entry: dict[str, dict[str, Any]] = {}
        self._budgets: dict[str, int] = {}
        self._read_at: float | None = None
        self._asked: set[str] = set()  # entries missing from the last read, asked once since

    def _refresh(self) -> None:
        now = self.clock()
        if self._read_at is not None and now - self._read_at < self.refresh_s:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for key in (PUBLISHED_POLICIES_KEY, PUBLISHED_ENTRY_POLICIES_KEY, PUBLISHED_BUDGETS_KEY):
                pipe.hgetall(key)
            by_task, by_entry, budgets = pipe.execute()
        self._by_task = {k: json.loads(v) for k, v in by_task.items()}
        self._by_entry = {k: json.loads(v) for k, v in by_entry.items()}
        self._budgets = {k: int(v) for k, v in budgets.items()}
        self._asked.clear()
        self._read_at = now

    def fields_for(self, task_name: str) -> dict[str, Any]:
        """The entry policy beat published for ``task_name`` (hand-triggered runs), or {}."""
        self._refresh()
        return self._by_task.get(task_name, {})

    def entry_fields(self, entry: str, task_name: str) -> dict[str, Any]:
        """The policy of schedule entry ``entry``, if beat published it for this very task; else {}."""
        return dict(self._bound_entry(entry, task_name).get("policy") or {})

    def entry_retry(self, entry: str, task_name: str) -> RetrySpec | None:
        """The retry policy of schedule entry ``entry``, if beat published one for this very task."""
        fields = self._bound_entry(entry, task_name).get("retry")
        if not fields:
            return None
        try:
            return RetrySpec(**{**fields, "on": tuple(fields.get("on") or ())})
        except TypeError:  # a publication this code cannot read (another version's beat)
            raise PolicyError(task_name, "retry", fields, "not a retry policy this worker knows") from None

    def _bound_entry(self, entry: str, task_name: str) -> dict[str, Any]:
        self._refresh()
        published = self._by_entry.get(entry) if entry else None
        if published is None and entry and entry not in self._asked:
            # An entry put at runtime (tasks.dynamic) may fire before the next full read: ask for it.
            self._asked.add(entry)
            raw = self.client.hget(PUBLISHED_ENTRY_POLICIES_KEY, entry)
            if raw is not None:
                published = self._by_entry[entry] = json.loads(raw)
        return published if published and published.get("task") == task_name else {}

    def budget_for(self, task_name: str) -> int | None:
        """The runs-per-hour budget beat published for ``task_name``; None when it published none."""
        self._refresh()
        return self._budgets.get(task_name)

    def default_budget(self) -> int | None:
        self._refresh()
        return self._budgets.get(DEFAULT_BUDGET_FIELD)

