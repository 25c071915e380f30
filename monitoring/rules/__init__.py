"""The monitor's alert rules, one module per family; :func:`default_rules` in evaluation order.

Order matters: Redis first (everything else needs it), then the history rule (it drains the
run-record spool, so the rules after it see the newest runs, and tells them whether SQL
answers), then the rest; events before the invocation rate (a task whose budget alerted is
not alerted on again for its rate).
"""
from __future__ import annotations

from monitoring.rules.base import PlatformKeys, Rule, RuleContext, WorkerProbe
from monitoring.rules.events import EventsRule
from monitoring.rules.heartbeat import HeartbeatRule
from monitoring.rules.infrastructure import CeleryWorkers, HistoryRule, QueueConsumersRule, RedisRule
from monitoring.rules.missed import MissedRunsRule
from monitoring.rules.runs import ConsecutiveFailuresRule, FailedRunRule, InvocationRateRule, LongRunRule
from monitoring.rules.settings import MonitorSettingError, RuleSettings

__all__ = ["CeleryWorkers", "MonitorSettingError", "PlatformKeys", "Rule", "RuleContext", "RuleSettings",
           "WorkerProbe", "default_rules"]


def default_rules() -> list[Rule]:
    return [RedisRule(), HistoryRule(), HeartbeatRule(), QueueConsumersRule(), MissedRunsRule(), LongRunRule(),
            FailedRunRule(), ConsecutiveFailuresRule(), EventsRule(), InvocationRateRule()]
