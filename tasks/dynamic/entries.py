"""Dynamic entries: schedule entries added, replaced and removed at runtime, by name or prefix.

An application calls ``DynamicEntries.for_app(app).put(name, spec)`` with the mapping a schedule
file entry takes. ``put`` validates it with the one validator ``beatkeeper check`` uses
(``tasks.beat.schedule_source.load_validated_schedule``) and the task budget rule
(``schedules.guards.budget_problems``), and refuses with check's line (:class:`EntryRefused`).

An accepted entry is stored exactly as beat stores a file entry (redbeat's hash ``definition`` +
``meta`` and its score in the schedule's sorted set): beat's next tick sees it, with no restart
and no extra work per idle tick. Beside it, the spec as given (``ENTRIES_KEY``), its name
(``NAMES_KEY``, sorted for prefix ranges) and each task's summed peak runs/hour (``PEAKS_KEY``,
so the budget is judged without reading every entry). Each change is one MULTI.

Rules beyond a file entry's:
- a name the schedule file (or the platform) uses is refused;
- ``max_runs_per_hour`` is refused: a task's budget is set by the file or the task's declaration
  (what beat publishes for the workers); dynamic entries spend it;
- an ``at`` entry is removed by beat once its instant is dispatched (or skipped by its catch-up
  policy): the run stays in the history.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import redis
from redbeat.decoder import RedBeatJSONEncoder
from redbeat.schedulers import ensure_conf

from monitoring.namespace import namespaced
from schedules.entry import EntrySpec
from schedules.errors import BeatkeeperScheduleError, Problem, ScheduleConfigError
from schedules.guards import budget_problems
from schedules.platform import effective_schedule
from schedules.settings import ScheduleSettings
from tasks.beat.entry import _encoded_definition  # the one stored form of a definition
from tasks.beat.trigger_schedule import TriggerSchedule
from tasks.beat.policy_publisher import declared_budgets, message_options, policy_fields
from tasks.policy import PUBLISHED_ENTRY_POLICIES_KEY, published_entry
from tasks.infra.redis_client import app_redis
from tasks.beat.schedule_source import load_validated_schedule

ENTRIES_KEY = namespaced("beatkeeper:dynamic:entries")  # hash: name -> JSON {"spec", "task", "peak", "kind", "policy"}
NAMES_KEY = namespaced("beatkeeper:dynamic:names")  # sorted set, all scores 0: names in lexical order
PEAKS_KEY = namespaced("beatkeeper:dynamic:peaks")  # hash: task -> summed peak runs/hour of its dynamic entries
POLICIES_KEY = namespaced("beatkeeper:dynamic:policies")  # hash: name -> published policy, of entries that set one
TASK_PEAKS_PREFIX = namespaced("beatkeeper:dynamic:peaks:")  # + task: hash name -> peak runs/hour (read on refusal only)
RETIRED_POLICIES_KEY = namespaced("beatkeeper:dynamic:retired")  # sorted set: name -> when its policy may go (unix s)
#: Seconds a dispatched one-off's published policy stays: its redeliveries and retries read it.
RETIRED_POLICY_KEEP_S = 86_400.0
REMOVE_BATCH = 1000  # names removed per MULTI by remove_prefix
WRITE_BATCH = 1000  # entries written per MULTI by put_many


class EntryRefused(ValueError):
    """A dynamic entry ``beatkeeper check`` would refuse; ``str()`` is check's line (one per problem)."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class StoredEntry:
    """What is kept per dynamic entry beside redbeat's hash."""

    spec: dict[str, Any]
    task: str
    peak: float  # its trigger's peak runs/hour (its share of the task's budget)
    kind: str  # every, cron, at, windows
    policy: str  # what is published for the workers (``tasks.policy.published_entry``), set or not

    def to_json(self) -> str:
        return json.dumps({"spec": self.spec, "task": self.task, "peak": self.peak, "kind": self.kind,
                           "policy": self.policy})

    @classmethod
    def from_json(cls, text: str) -> "StoredEntry":
        data = json.loads(text)
        return cls(spec=data["spec"], task=data["task"], peak=float(data["peak"]), kind=data["kind"],
                   policy=data["policy"])


class _Peak:
    """A stand-in trigger for the other dynamic entries of a task in the budget rule: only their
    summed peak runs/hour counts there."""

    def __init__(self, runs_per_hour: float):
        self.runs_per_hour = runs_per_hour

    def peak_runs_per_hour(self) -> float:
        return self.runs_per_hour


class DynamicEntries:
    """Add, replace and remove schedule entries at runtime (see the module docstring)."""

    def __init__(self, app, client: redis.Redis, *, environ: Mapping[str, str] = os.environ):
        self.app = app
        self.client = client
        self.environ = environ
        ensure_conf(app)
        self.key_prefix = app.redbeat_conf.key_prefix
        self.schedule_key = app.redbeat_conf.schedule_key
        self._file: dict[str, EntrySpec] | None = None
        self._file_names: frozenset[str] = frozenset()

    @classmethod
    def for_app(cls, app, *, environ: Mapping[str, str] = os.environ) -> "DynamicEntries":
        """The dynamic entries of ``app``'s Redis (the one beat reads), judged by its settings."""
        return cls(app, app_redis(app), environ=environ)

    # -- reading ---------------------------------------------------------------
    def get(self, name: str) -> dict | None:
        """The spec stored for ``name``, as given to :meth:`put`; None when there is none."""
        text = self.client.hget(ENTRIES_KEY, name)
        return None if text is None else StoredEntry.from_json(text).spec

    def names(self, prefix: str = "") -> list[str]:
        """The dynamic entries' names starting with ``prefix``, sorted."""
        return [str(n) for n in self.client.zrangebylex(NAMES_KEY, *lex_range(prefix))]

    # -- writing ---------------------------------------------------------------
    def put(self, name: str, spec: Mapping[str, Any]) -> None:
        """Add ``name``, or replace it (the old definition's instants never fire).

        Raises :class:`EntryRefused` with check's line(s) when check would refuse the entry."""
        self.put_many({name: spec})

    def put_many(self, specs: Mapping[str, Mapping[str, Any]]) -> None:
        """:meth:`put` each of ``specs`` (name -> spec), in a few round trips: all are stored, or
        none (:class:`EntryRefused` lists every problem)."""
        now = self._now()
        validated, warnings = self._validated(specs, now)
        names = list(validated)
        tasks = sorted({spec.task for spec in validated.values()})
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(ENTRIES_KEY, names)
            pipe.hmget(PEAKS_KEY, tasks)
            old_texts, task_peaks = pipe.execute()
        olds = {name: StoredEntry.from_json(text) for name, text in zip(names, old_texts) if text is not None}
        others = {task: float(peak or 0) for task, peak in zip(tasks, task_peaks)}
        for old in olds.values():
            if old.task in others:
                others[old.task] -= old.peak
        self._refuse_over_budget(validated, others)
        dues = {name: spec.trigger.next_fire_after(now) for name, spec in validated.items()}
        never = [name for name, due in dues.items() if due is None]
        if never:  # check warns of them; stored, they would only wait for a removal
            raise EntryRefused([w for w in warnings if w.entry in never]
                               or [Problem(name, validated[name].kind.value, "never fires after now")
                                   for name in never])
        meta = json.dumps({"last_run_at": now, "total_run_count": 0}, cls=RedBeatJSONEncoder)
        for start in range(0, len(names), WRITE_BATCH):
            with self.client.pipeline(transaction=True) as pipe:
                for name in names[start:start + WRITE_BATCH]:
                    self._write(pipe, name, specs[name], validated[name], olds.get(name), meta, dues[name])
                pipe.execute()

    def _write(self, pipe, name: str, raw: Mapping[str, Any], spec: EntrySpec, old: "StoredEntry | None",
               meta: str, due: datetime) -> None:
        peak = spec.trigger.peak_runs_per_hour()
        policy = published_entry(spec.task, policy_fields(spec), spec.retry)
        record = StoredEntry(spec=dict(raw), task=spec.task, peak=peak, kind=spec.kind.value, policy=policy)
        fields = {"task": spec.task, "schedule": TriggerSchedule(spec.trigger), "args": list(spec.args),
                  "kwargs": dict(spec.kwargs), "options": message_options(spec)}
        key = self.key_prefix + name
        if old is not None:
            pipe.hincrbyfloat(PEAKS_KEY, old.task, -old.peak)
            pipe.hdel(TASK_PEAKS_PREFIX + old.task, name)
        pipe.hincrbyfloat(PEAKS_KEY, spec.task, peak)
        pipe.hset(TASK_PEAKS_PREFIX + spec.task, name, peak)
        pipe.hset(ENTRIES_KEY, name, record.to_json())
        pipe.zadd(NAMES_KEY, {name: 0})
        pipe.zrem(RETIRED_POLICIES_KEY, name)  # a one-off put again under a dispatched one's name: its own policy
        # A fresh meta: a replaced entry's next fire is the new trigger's first after now.
        pipe.hset(key, mapping={"definition": _encoded_definition(name, fields), "meta": meta})
        pipe.zadd(self.schedule_key, {key: due.timestamp()})
        # Published only when it says something (the workers read the whole hash every few
        # seconds: 100,000 entries following their task's declaration add nothing to it).
        if policy_fields(spec) or spec.retry:
            pipe.hset(PUBLISHED_ENTRY_POLICIES_KEY, name, policy)
            pipe.hset(POLICIES_KEY, name, policy)
        elif old is not None:
            pipe.hdel(PUBLISHED_ENTRY_POLICIES_KEY, name)
            pipe.hdel(POLICIES_KEY, name)

    def remove(self, name: str) -> bool:
        """Remove ``name``; True when it existed."""
        return self._remove([name]) == 1

    def remove_prefix(self, prefix: str) -> int:
        """Remove every dynamic entry whose name starts with ``prefix``; how many were removed."""
        removed = 0
        while True:
            batch = [str(n) for n in self.client.zrangebylex(NAMES_KEY, *lex_range(prefix),
                                                               start=0, num=REMOVE_BATCH)]
            if not batch:
                return removed
            removed += self._remove(batch)

    def _remove(self, names: list[str]) -> int:
        texts = self.client.hmget(ENTRIES_KEY, names)
        found = {n: StoredEntry.from_json(t) for n, t in zip(names, texts) if t is not None}
        with self.client.pipeline(transaction=True) as pipe:
            for name, record in found.items():
                delete_commands(pipe, name, record.task, record.peak, key_prefix=self.key_prefix,
                                schedule_key=self.schedule_key)
            pipe.zrem(NAMES_KEY, *names)  # a name without a record is a leftover: gone too
            pipe.execute()
        return len(found)

    # -- validation ------------------------------------------------------------
    def _validated(self, specs: Mapping[str, Mapping[str, Any]],
                   now: datetime) -> tuple[dict[str, EntrySpec], list[Problem]]:
        """The validated entries and check's warnings about them."""
        if not isinstance(specs, Mapping):
            raise EntryRefused([Problem(None, None, f"expected a mapping of entry name to entry, "
                                                    f"got {type(specs).__name__}")])
        self._load_file(now)
        problems = []
        for name, spec in specs.items():
            if name in self._file_names:
                problems.append(Problem(name, "name", "is a schedule file entry; a dynamic entry cannot take it"))
            if isinstance(spec, Mapping) and "max_runs_per_hour" in spec:
                problems.append(Problem(name, "max_runs_per_hour", "a dynamic entry cannot set its task's budget; "
                                        "set it in the schedule file or the task's declaration"))
        if problems:
            raise EntryRefused(problems)
        try:
            # Budget: judged with the tasks' other entries (_refuse_over_budget); code and
            # settings: judged with the file (_load_file).
            validated = load_validated_schedule(self.app, environ=self.environ, raw=specs, now=now,
                                                entries_only=True)
        except ScheduleConfigError as exc:
            raise EntryRefused(exc.problems) from None
        except BeatkeeperScheduleError as exc:
            raise EntryRefused([Problem(None, None, str(exc))]) from None
        return validated.entries, validated.warnings

    def _refuse_over_budget(self, validated: Mapping[str, EntrySpec], others_peak: Mapping[str, float]) -> None:
        """Each task's budget, by check's rule, over its file entries, its other dynamic entries
        and the new ones. Judged on the others' summed peak; named one by one (as check names
        them, in the order check would meet them) only for the refusal's lines."""
        summed = {task: {f"{task} (other dynamic entries)": peak} for task, peak in others_peak.items()}
        problems = self._budget_problems(validated, summed)
        if problems:
            named = {}
            for task in others_peak:
                peaks = {str(n): float(p) for n, p in self.client.hgetall(TASK_PEAKS_PREFIX + task).items()}
                named[task] = {n: p for n, p in sorted(peaks.items()) if n not in validated}
            raise EntryRefused(self._budget_problems(validated, named) or problems)

    def _budget_problems(self, validated: Mapping[str, EntrySpec],
                         others: Mapping[str, Mapping[str, float]]) -> list[Problem]:
        tasks = {spec.task: spec for spec in validated.values()}
        entries = {n: s for n, s in (self._file or {}).items() if s.task in tasks}
        for task, peaks in others.items():
            for other, peak in peaks.items():
                if peak > 0:
                    entries[other] = replace(tasks[task], name=other, trigger=_Peak(peak), max_runs_per_hour=None)
        entries.update(validated)
        settings = ScheduleSettings.from_env(self.environ)
        return budget_problems(entries, settings=settings, declared=declared_budgets(self.app.tasks))

    def _load_file(self, now: datetime) -> None:
        """The file's entries (names, and specs for the budget), read once per instance."""
        if self._file is not None:
            return
        try:
            self._file_names = frozenset(effective_schedule(self.environ))
            self._file = load_validated_schedule(self.app, environ=self.environ, now=now).entries
        except ScheduleConfigError as exc:
            raise EntryRefused([Problem(None, None, "the schedule file has problems; fix them first "
                                                    f"(`beatkeeper check`): {exc.problems[0]}")]) from None
        except BeatkeeperScheduleError as exc:
            raise EntryRefused([Problem(None, None, f"the schedule file cannot be read: {exc}")]) from None

    def _now(self) -> datetime:
        moment = self.app.now()
        return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def delete_commands(pipe, name: str, task: str, peak: float, *, key_prefix: str, schedule_key: str,
                    retire_policy_at: float | None = None) -> None:
    """Queue on ``pipe`` the removal of dynamic entry ``name`` (put's writes undone); beat uses it
    for an ``at`` entry it dispatched, with ``retire_policy_at``: the run it just sent still reads
    the entry's policy (its retries, a redelivery), so the policy stays published until then
    (``tasks.beat.dynamic.expire_retired_policies``)."""
    key = key_prefix + name
    forget_commands(pipe, name, task, peak, keep_policy=retire_policy_at is not None)
    pipe.zrem(schedule_key, key)
    pipe.delete(key)
    if retire_policy_at is None:
        pipe.hdel(PUBLISHED_ENTRY_POLICIES_KEY, name)
    else:
        pipe.zadd(RETIRED_POLICIES_KEY, {name: retire_policy_at})


def forget_commands(pipe, name: str, task: str, peak: float, *, keep_policy: bool = False) -> None:
    """Queue on ``pipe`` the removal of what marks ``name`` as a dynamic entry (its redbeat
    entry stays: beat uses it when a file entry took the name; ``keep_policy``: its policy too,
    republished at beat's start until retired)."""
    pipe.hincrbyfloat(PEAKS_KEY, task, -peak)
    pipe.hdel(TASK_PEAKS_PREFIX + task, name)
    if not keep_policy:
        pipe.hdel(POLICIES_KEY, name)
    pipe.hdel(ENTRIES_KEY, name)
    pipe.zrem(NAMES_KEY, name)


def lex_range(prefix: str) -> tuple[str, str]:
    """ZRANGEBYLEX bounds of the names starting with ``prefix``."""
    return ("-", "+") if not prefix else (f"[{prefix}", f"[{prefix}\U0010ffff")

