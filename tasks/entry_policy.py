"""A schedule entry's run policy, as beat sends it with each dispatch and publishes it for
hand-triggered runs of the same task."""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Mapping

from schedules.entry import EntrySpec, OverlapPolicy
from tasks.policy import RunPolicy

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
