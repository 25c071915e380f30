"""``beat_heartbeat``: beat's heartbeat is older than ``heartbeat_max_age_s`` (default 3 min).

The ``beatkeeper.heartbeat`` task records, when a worker runs it, the instant beat
scheduled it (component ``beat``). An old ``beat`` score therefore means the heartbeat
entry was not dispatched (beat down, or it lost Redis) or not executed (no worker took
it); the alert says which, from beat's lock and the worker heartbeats. Never having seen
a heartbeat counts from the monitor's first start, so a fresh install is given the same
grace as a running one. The rule is off when no registered entry runs the heartbeat task
(it was kill-switched on purpose).
"""
from __future__ import annotations

from monitoring.alerts import Alert, Severity
from monitoring.heartbeats import heartbeat_ages_s
from monitoring.rules.base import Rule, RuleContext

RULE = "beat_heartbeat"


class HeartbeatRule(Rule):
    names = (RULE,)

    def evaluate(self, ctx: RuleContext) -> list[Alert]:
        if not any(spec.task == ctx.keys.heartbeat_task for spec in ctx.specs.values()):
            return []
        limit_s = ctx.settings.heartbeat_max_age_s
        ages = heartbeat_ages_s(ctx.client, now=ctx.now)
        age_s = ages.get("beat")
        if age_s is None:
            since_start_s = ctx.now - ctx.first_start
            if since_start_s <= limit_s:
                return []
            summary = f"no beat heartbeat recorded in the {since_start_s:.0f} s since the monitor first started"
        elif age_s > limit_s:
            summary = f"beat's heartbeat is {age_s:.0f} s old (limit {limit_s:.0f} s)"
        else:
            return []
        cause = self._likely_cause(ctx, ages)
        return [Alert(RULE, "beat", Severity.CRITICAL, f"{summary}: {cause}",
                      {"age_s": None if age_s is None else round(age_s, 1), "limit_s": limit_s, "cause": cause,
                       "worker_age_s": None if "worker" not in ages else round(ages["worker"], 1)})]

    @staticmethod
    def _likely_cause(ctx: RuleContext, ages: dict[str, float]) -> str:
        lock_ttl_ms = ctx.client.pttl(ctx.keys.redbeat_lock_key)
        if lock_ttl_ms is None or lock_ttl_ms < 0:
            return f"no beat holds {ctx.keys.redbeat_lock_key}: beat is not running"
        worker_age_s = ages.get("worker")
        if worker_age_s is not None and worker_age_s <= ctx.settings.heartbeat_max_age_s:
            return "beat holds its lock but dispatches nothing: check beat's log"
        return "beat holds its lock but no worker ran the heartbeat: check the workers and queues"
