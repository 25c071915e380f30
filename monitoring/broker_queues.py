"""Queue depth from the broker itself, through kombu: RabbitMQ or Redis, wherever it is.

A passive ``queue_declare`` answers with the queue's ``message_count`` on every kombu transport
(AMQP: the server's count of ready messages; Redis: the lengths of the queue's priority lists)
and creates nothing. A queue the broker does not know holds nothing: 0.

The state store's Redis is no guide: with ``CELERY_BROKER_URL`` apart from ``REDIS_URL`` the
queues are not there (issue 17). Which queues exist is listed only for a Redis broker (kombu keeps
each exchange's bindings in a set there); AMQP lists none without the management plugin, so for
RabbitMQ the queues in use are those entries send to and workers consume.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import redis

QUEUE_NOT_FOUND = 404  # AMQP reply code of a passive declare of an unknown queue


class BrokerProbe(Protocol):
    def depths(self, queues: Iterable[str]) -> dict[str, int]:
        """Messages waiting in each queue; raises when the broker cannot be asked."""

    def declared(self) -> set[str]:
        """Queues the broker lists (empty where it cannot list them)."""


class BrokerQueues:
    """``connect``: a new kombu connection to the broker (``app.connection_for_read``);
    ``redis_client``: the broker's Redis, for the list of declared queues (None: RabbitMQ)."""

    def __init__(self, connect: Callable[[], Any], *, redis_client: redis.Redis | None = None):
        self.connect = connect
        self.redis_client = redis_client

    def depths(self, queues: Iterable[str]) -> dict[str, int]:
        depths = {}
        with self.connect() as connection:
            connection.ensure_connection(max_retries=1)
            for queue in sorted(set(queues)):
                depths[queue] = _message_count(connection, queue)
        return depths

    def declared(self) -> set[str]:
        if self.redis_client is None:
            return set()
        from monitoring.rules.infrastructure import declared_queues

        return declared_queues(self.redis_client)


def _message_count(connection: Any, queue: str) -> int:
    channel = connection.channel()  # its own: AMQP closes a channel on a 404
    try:
        return int(channel.queue_declare(queue=queue, passive=True).message_count)
    except connection.channel_errors as exc:
        if _reply_code(exc) != QUEUE_NOT_FOUND:
            raise
        return 0
    finally:
        try:
            channel.close()
        except Exception:  # already closed by the broker's 404
            pass


def _reply_code(exc: Exception) -> int | None:
    code = getattr(exc, "reply_code", None) or getattr(exc, "code", None)
    if code is None and "NOT_FOUND" in str(exc):
        return QUEUE_NOT_FOUND
    try:
        return int(code)
    except (TypeError, ValueError):
        return None


class QueueDepthCollector:
    """``beatkeeper_queue_messages{queue}``: the broker's count, read live at each scrape for the
    queues ``queues()`` names (the monitor's latest report: entries', consumers', declared)."""

    def __init__(self, probe: BrokerProbe, queues: Callable[[], Iterable[str]]):
        self.probe = probe
        self.queues = queues

    def describe(self) -> Iterable[Any]:
        return []  # registering must not ask the broker

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("beatkeeper_queue_messages", "Messages waiting in each queue, as the broker "
                                   "counts them (RabbitMQ or Redis, through kombu).", labels=["queue"])
        for queue, count in sorted(self.probe.depths(self.queues()).items()):
            family.add_metric([queue], float(count))
        yield family
