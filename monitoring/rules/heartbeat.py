"""``beat_heartbeat``: beat's heartbeat is older than ``heartbeat_max_age_s`` (default 3 min).

The ``beatkeeper.heartbeat`` task records, when a worker runs it, the instant beat
scheduled it (component ``beat``). An old ``beat`` score therefore means the heartbeat
entry was not dispatched (beat down, or it lost Redis) or not executed (no worker took
it); the alert says which, from beat's lock and the worker heartbeats. Never having seen
a heartbeat counts from the monitor's first start, so a fresh install is given the same
grace as a running one. The rule is off when no registered entry runs the heartbeat task
(it was kill-switched on purpose). While the heartbeat is paused its age is not judged
(only that a beat holds its lock), and after the pause it counts from the pause's end.
"""
from __future__ import annotations

from monitoring.alerts import Alert, Severity
from monitoring.heartbeats import BeatHeartbeat, beat_heartbeat
from monitoring.rules.base import Rule, RuleContext

RULE = "beat_heartbeat"


class HeartbeatRule(Rule):
    names = (RULE,)

    def evaluate(self, ctx: RuleContext) -> list[Alert]:
        heartbeat = self._heartbeat(ctx)
        if heartbeat is None:
            return []
        limit_s = ctx.settings.heartbeat_max_age_s
        if heartbeat.pause is not None:
            # Paused: no heartbeat to judge, but beat itself must still hold its lock.
            if self._lock_held(ctx):
                return []
            cause = self._no_lock(ctx)
            return [Alert(RULE, "beat", Severity.CRITICAL, f"{heartbeat.describe(limit_s)}; {cause}",
                          {"age_s": None, "limit_s": limit_s, "cause": cause, "paused": heartbeat.pause.describe()})]
        age_s = heartbeat.age_s
        if age_s is None:
            since_start_s = ctx.now - ctx.first_start
            if since_start_s <= limit_s:
                return []
            summary = f"no beat heartbeat recorded in the {since_start_s:.0f} s since the monitor first started"
        elif age_s > limit_s:
            summary = heartbeat.describe(limit_s)
        else:
            return []
        cause = self._likely_cause(ctx, heartbeat)
        return [Alert(RULE, "beat", Severity.CRITICAL, f"{summary}: {cause}",
                      {"age_s": None if age_s is None else round(age_s, 1), "limit_s": limit_s, "cause": cause,
                       "worker_age_s": None if heartbeat.worker_age_s is None else round(heartbeat.worker_age_s, 1)})]

    def resolution(self, ctx: RuleContext, alert: Alert) -> str:
        heartbeat = self._heartbeat(ctx)
        if heartbeat is None:
            return "no registered entry runs the heartbeat task any more"
        return heartbeat.describe(ctx.settings.heartbeat_max_age_s)

    @staticmethod
    def _heartbeat(ctx: RuleContext) -> BeatHeartbeat | None:
        """None when no registered entry runs the heartbeat task (it was kill-switched on purpose)."""
        entries = [name for name, spec in ctx.specs.items() if spec.task == ctx.keys.heartbeat_task]
        if not entries:
            return None
        return beat_heartbeat(ctx.client, now=ctx.now, entries=entries, task=ctx.keys.heartbeat_task,
                              spans=ctx.pause_spans())

    @staticmethod
    def _lock_held(ctx: RuleContext) -> bool:
        lock_ttl_ms = ctx.client.pttl(ctx.keys.redbeat_lock_key)
        return lock_ttl_ms is not None and lock_ttl_ms >= 0

    @staticmethod
    def _no_lock(ctx: RuleContext) -> str:
        return f"no beat holds {ctx.keys.redbeat_lock_key}: beat is not running"

    @classmethod
    def _likely_cause(cls, ctx: RuleContext, heartbeat: BeatHeartbeat) -> str:
        if not cls._lock_held(ctx):
            return cls._no_lock(ctx)
        worker_age_s = heartbeat.worker_age_s
        if worker_age_s is not None and worker_age_s <= ctx.settings.heartbeat_max_age_s:
            return "beat holds its lock but dispatches nothing: check beat's log"
        return "beat holds its lock but no worker ran the heartbeat: check the workers and queues"
