"""Where the broker keeps messages, apart from where beatkeeper keeps state.

``REDIS_URL`` is the state store (redbeat's schedule, locks, run claims, the history spool);
``CELERY_BROKER_URL`` (default: ``REDIS_URL``) is the broker: the same Redis, a second Redis, or
RabbitMQ (``amqp://``). What depends on the broker asks here:

- the delivery watch (``tasks.beat.delivery_watch``) looks for queued and unacked messages in the
  broker's Redis; with RabbitMQ it does not watch at all, since publisher confirms
  (``confirm_publish``, celeryconfig) make a returned publish one the broker holds, and RabbitMQ
  requeues what a dead consumer had unacked (no BRPOP-then-list window to lose it in);
- queue depth (``monitoring.broker_queues``) goes through kombu to whichever broker it is;
- RabbitMQ's ``consumer_timeout`` against late acks is a start-up finding (:func:`consumer_timeout_findings`).

How consumer_timeout is known: AMQP does not expose a server's settings, and the per-queue
``x-consumer-timeout`` argument exists only from RabbitMQ 3.12 on (Debian 12 ships 3.10, which
ignores it), so declaring one would claim a limit the server may not apply. beatkeeper therefore
compares what the operator states, ``BEATKEEPER_RABBITMQ_CONSUMER_TIMEOUT`` (seconds; default
RabbitMQ's own default, 1800), with the longest run it expects: Celery's ``task_time_limit``
when set, else ``BEATKEEPER_MAX_LOCK_TTL``.
"""
from __future__ import annotations

from typing import Any

import redis

from schedules.durations import format_seconds
from monitoring.broker_queues import BrokerQueues
from tasks.infra.redis_client import app_redis, redis_for
from tasks.beat.selfchecks import Finding

AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
REDIS_SCHEMES = ("redis", "rediss")


def broker_scheme(app: Any) -> str:
    return (app.conf.broker_url or app.conf.redis_url).split("://", 1)[0].lower()


def is_amqp_broker(app: Any) -> bool:
    return broker_scheme(app) in AMQP_SCHEMES


def broker_redis(app: Any, state: redis.Redis | None = None) -> redis.Redis | None:
    """A client on the broker's Redis, None for another broker. When broker and state store are one
    Redis, the state store's client: ``state`` when given, else the app's."""
    url = app.conf.broker_url or app.conf.redis_url
    if broker_scheme(app) not in REDIS_SCHEMES:
        return None
    if url == app.conf.redis_url:
        return app_redis(app) if state is None else state
    return redis_for(url)


def watches_deliveries(app: Any) -> bool:
    """Beat watches its dispatches until claimed only where a broker can lose an accepted message
    (kombu's Redis transport); RabbitMQ confirms each publish instead."""
    return broker_scheme(app) in REDIS_SCHEMES


def consumer_timeout_findings(app: Any) -> list[Finding]:
    """One line when RabbitMQ would close a late-acking consumer's channel before its longest run ends."""
    if not is_amqp_broker(app) or not app.conf.task_acks_late:
        return []
    timeout_s = float(app.conf.get("rabbitmq_consumer_timeout_s") or 1800)
    time_limit_s = app.conf.task_time_limit
    longest_s, source = ((float(time_limit_s), "task_time_limit") if time_limit_s
                         else (float(app.conf.max_lock_ttl_s), "BEATKEEPER_MAX_LOCK_TTL"))
    if longest_s <= timeout_s:
        return []
    return [Finding("rabbitmq-consumer-timeout",
                    f"RabbitMQ consumer_timeout {format_seconds(timeout_s)} s (BEATKEEPER_RABBITMQ_CONSUMER_TIMEOUT) "
                    f"is shorter than the longest expected run, {format_seconds(longest_s)} s ({source}): with "
                    "late acks RabbitMQ closes the channel of a longer run and redelivers its message; raise "
                    "consumer_timeout in rabbitmq.conf and state it in BEATKEEPER_RABBITMQ_CONSUMER_TIMEOUT",
                    False)]


def broker_queues(app: Any) -> BrokerQueues:
    """The app's broker as ``monitoring.broker_queues`` asks it for queue depth."""
    return BrokerQueues(app.connection_for_read, redis_client=broker_redis(app))
