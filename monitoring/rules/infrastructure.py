"""The platform's plumbing: Redis, the history database, workers on every queue in use.

- ``redis_unreachable``: the monitor's PING failed (the monitor measures it first and puts
  the error in the context; everything needing Redis then waits, its alerts unchanged);
- ``history_unavailable``: spooled run records could not be moved to SQL or SQL could not
  be read; missed-run and failure rules wait for it, so an outage never looks like misses;
- ``queue_unconsumed``: a queue that schedule entries send to, or that holds messages, has
  no live worker consuming it (asked of the workers through Celery's remote control).
"""
from __future__ import annotations

from typing import Any

import redis

from monitoring.alerts import Alert, Severity
from monitoring.history_queries import latest_row_id
from monitoring.namespace import namespaced
from monitoring.rules.base import NEEDS_WORKERS, Rule, RuleContext

REDIS_RULE = "redis_unreachable"
HISTORY_RULE = "history_unavailable"
QUEUE_RULE = "queue_unconsumed"
#: kombu's Redis transport keeps messages of priority 3, 6 and 9 in lists named so.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
_BINDING_PREFIX = "_kombu.binding."  # + exchange: set of "<routing key>\x06\x16<pattern>\x06\x16<queue>"
_BINDING_SEPARATOR = "\x06\x16"
_CONTROL_EXCHANGES = ("pidbox", "celeryev")  # remote control and events: not work queues


class RedisRule(Rule):
    names = (REDIS_RULE,)
    needs = frozenset()

    def evaluate(self, ctx: RuleContext) -> list[Alert]:
        if ctx.redis_error is None:
            return []
        return [Alert(REDIS_RULE, "redis", Severity.CRITICAL,
                      f"Redis is unreachable ({ctx.redis_error}): beat, workers and locks are all stalled",
                      {"error": ctx.redis_error})]


class HistoryRule(Rule):
    """Drains the run-record spool to SQL (so later rules see the newest runs) and checks SQL answers."""

    names = (HISTORY_RULE,)

    def evaluate(self, ctx: RuleContext) -> list[Alert]:
        if ctx.history is None:
            return []
        error = None
        try:
            result = ctx.history.drain(max_batches=50)  # bounded: an evaluation must end
            # refused: this monitor's DATABASE_URL is not the deployment's (asked even with nothing spooled:
            # its history would show false misses)
            error = result.error or result.refused or ctx.history.home_refusal()
            if error is None:
                latest_row_id(ctx.history.engine)
        except redis.RedisError:
            raise  # Redis trouble is the Redis rule's to report
        except Exception as exc:  # any database failure: report it, never crash the evaluation
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ctx.history_error = error
        ctx.cache["history_checked"] = True
        if error is None:
            return []
        return [Alert(HISTORY_RULE, "history", Severity.CRITICAL,
                      f"the history database is unavailable ({error}); run records wait in Redis and "
                      "missed-run checks are paused until it is back", {"error": error})]


def queue_length(client: redis.Redis, queue: str) -> int:
    """Messages waiting in ``queue`` on the Redis broker (every priority list)."""
    with client.pipeline(transaction=False) as pipe:
        for suffix in _PRIORITY_SUFFIXES:
            pipe.llen(namespaced(queue + suffix))  # kombu's global_keyprefix is the namespace
        return sum(int(n) for n in pipe.execute())


def declared_queues(client: redis.Redis) -> set[str]:
    """Queues declared on the broker (kombu keeps each exchange's bindings in a Redis set)."""
    queues = set()
    for key in client.scan_iter(match=namespaced(_BINDING_PREFIX) + "*", count=500):
        if any(part in key for part in _CONTROL_EXCHANGES):
            continue
        for member in client.smembers(key):
            queues.add(member.rsplit(_BINDING_SEPARATOR, 1)[-1])
    return queues



class CeleryWorkers:
    """Which worker consumes which queue, asked of the workers (Celery's ``inspect active_queues``)."""

    def __init__(self, app: Any, *, timeout_s: float = 1.0):
        self.app = app
        self.timeout_s = timeout_s

    def consumers(self) -> dict[str, list[str]]:
        replies = self.app.control.inspect(timeout=self.timeout_s).active_queues() or {}
        return {worker: sorted(q["name"] for q in queues or []) for worker, queues in replies.items()}


def queue_report(ctx: RuleContext) -> dict[str, dict[str, Any]]:
    """Every queue in use: its schedule entries, waiting messages and consumers (once per evaluation)."""
    if "queues" in ctx.cache:
        return ctx.cache["queues"]
    consumers = ctx.workers.consumers() if ctx.workers is not None else {}
    report: dict[str, dict[str, Any]] = {}
    for name, spec in sorted(ctx.specs.items()):
        report.setdefault(ctx.queue(spec), {"entries": [], "consumers": []})["entries"].append(name)
    for worker, queues in sorted(consumers.items()):
        for queue in queues:
            report.setdefault(queue, {"entries": [], "consumers": []})["consumers"].append(worker)
    # The broker's own count when it is known (``monitoring.broker_queues``: RabbitMQ or a Redis of
    # its own); else the state store's Redis is the broker.
    for queue in (ctx.broker.declared() if ctx.broker is not None else declared_queues(ctx.client)):
        report.setdefault(queue, {"entries": [], "consumers": []})
    depths = ctx.broker.depths(report) if ctx.broker is not None else \
        {queue: queue_length(ctx.client, queue) for queue in report}
    for queue, facts in report.items():
        facts["pending"] = depths[queue]
    ctx.cache["queues"] = report
    ctx.cache["workers"] = consumers
    return report


class QueueConsumersRule(Rule):
    names = (QUEUE_RULE,)
    needs = frozenset({"redis", NEEDS_WORKERS})

    def evaluate(self, ctx: RuleContext) -> list[Alert]:
        alerts = []
        for queue, facts in queue_report(ctx).items():
            if facts["consumers"] or not (facts["entries"] or facts["pending"]):
                continue
            used_by = f"entries {', '.join(facts['entries'])}" if facts["entries"] else "no schedule entry"
            alerts.append(Alert(QUEUE_RULE, queue, Severity.CRITICAL,
                                f"no worker consumes queue '{queue}' ({facts['pending']} message(s) waiting; "
                                f"used by {used_by})", dict(facts)))
        return alerts
