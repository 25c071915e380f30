"""A schedule entry's run policy, its retry policy and its task's budget, as beat publishes them
for the workers (the workers take them from there only, never from a message's headers)."""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Mapping

import redis

from schedules.entry import EntrySpec, OverlapPolicy
from schedules.guards import task_budgets
from tasks.policy import RunPolicy, publish_entry_policies

logger = logging.getLogger("beatkeeper.beat")


def policy_fields(spec: EntrySpec) -> dict[str, Any]:
    """The policy fields the entry sets explicitly (None: the task's declaration applies)."""
    fields = {"overlap": spec.overlap.value if spec.overlap else None, "lock_ttl_s": spec.lock_ttl_s,
              "lock_key": spec.lock_key, "max_runtime_s": spec.max_runtime_s, "time_limit_s": spec.time_limit_s}
    return {k: v for k, v in fields.items() if v is not None}


def message_options(spec: EntrySpec) -> dict[str, Any]:
    """Celery message options of each dispatch: queue, expires, hard time limit."""
    options: dict[str, Any] = {}
    if spec.queue:
        options["queue"] = spec.queue
    if spec.expires_s:
        options["expires"] = spec.expires_s
    if spec.time_limit_s:
        options["time_limit"] = spec.time_limit_s
    return options


def published_policies(specs: Mapping[str, EntrySpec]) -> dict[str, RunPolicy]:
    """Per task, the entry policy a hand-triggered run follows; none when its entries disagree."""
    by_task: dict[str, dict[str, dict]] = defaultdict(dict)
    for name, spec in specs.items():
        by_task[spec.task][name] = policy_fields(spec)
    policies = {}
    for task, per_entry in by_task.items():
        distinct = {tuple(sorted((k, str(v)) for k, v in f.items())) for f in per_entry.values()}
        if len(distinct) > 1:
            logger.warning("beat: entries %s of task %s set different policies; hand-triggered runs follow "
                           "the task's own declaration", sorted(per_entry), task)
            continue
        fields = dict(next(iter(per_entry.values())))
        if fields:
            if "overlap" in fields:
                fields["overlap"] = OverlapPolicy(fields["overlap"])
            if "lock_key" in fields:
                fields["lock_key"] = tuple(fields["lock_key"])
            policies[task] = RunPolicy(**fields)
    return policies


def declared_budgets(tasks: Mapping[str, Any]) -> dict[str, int]:
    """task name -> the ``max_runs_per_hour`` its code declares (``@app.task(max_runs_per_hour=120)``)."""
    found = {}
    for name, task in tasks.items():
        runs = getattr(task, "max_runs_per_hour", None)
        if isinstance(runs, int) and not isinstance(runs, bool) and runs > 0:
            found[name] = runs
    return found


def publish(client: redis.Redis, specs: Mapping[str, EntrySpec], *, default_budget: int,
            tasks: Mapping[str, Any]) -> None:
    """Publish, for the registered entries ``specs``: each entry's policy and retry policy, each
    task's hand-run policy, and each task's budget by the one rule ``check`` applied (``schedules.guards``)."""
    budgets = task_budgets(specs, default_runs_per_hour=default_budget, declared=declared_budgets(tasks))
    publish_entry_policies(client, published_policies(specs),
                           entries={name: (spec.task, policy_fields(spec), spec.retry) for name, spec in specs.items()},
                           budgets=budgets, default_budget=default_budget)
