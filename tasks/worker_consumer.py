"""The worker's consumer: Celery's, surviving a Redis that dies while tasks are in flight.

Celery 5.7 closes the broken broker connection after a connection loss
(``Consumer.on_connection_error_after_connected``): first ``connection.collect()``, then
``connection.close()``. With the Redis transport, when Redis is still down at that moment and
a ``BRPOP`` was in flight, ``collect`` fails part-way through closing the channel (reading the
dead ``BRPOP`` socket raises) but still detaches the transport from the connection; the
second close then tries to requeue the unacknowledged messages through a transport with no
connection info and raises ``AttributeError`` — not a connection error, so the worker stops
with "Unrecoverable error" instead of reconnecting. (Seen in ``tests/process/test_beat_faults.py``
when Redis is SIGKILLed under load.)

Nothing is lost by carrying on: the messages that could not be requeued stay in Redis'
unacked set (the broker redelivers them after its visibility timeout) and run identity
skips any that already ran. Named by ``celeryconfig.worker_consumer``.

The same closed channel bites once more: a late ack (or reject) of a task that was running
through the loss goes to the channel its message came on, which has no pool and no transport
connection info left, so kombu raises the same ``AttributeError`` ('NoneType' object has no
attribute 'hostname') in the event loop and the worker stops. That close failed before it
requeued anything, so the message still sits in Redis' unacked set under its delivery tag,
which the Redis transport keeps in shared keys, not per channel: the settle is made instead on
the consumer's current channel (``basic_ack``/``basic_reject``), with one warning. When there
is no usable channel (Redis down again) it is logged and dropped, as kombu drops an ack that
meets a connection error: the broker redelivers the message after its visibility timeout.
(Reproduced by ``tests/process/test_worker_reconnect_ack.py``.)

No message content stops the worker either (``tasks.poison``). Celery rejects a message it
cannot decode or whose content type is not accepted, but its request builder raises plain
``TypeError``/``ValueError``/``KeyError`` on a body of the wrong shape, and those end the worker.
Here a message over the size cap or with unusable headers is rejected before Celery looks at
it; each task's strategy first checks the decoded body's shape and raises Celery's own
``InvalidTaskError``, so Celery's ``on_invalid_task`` rejects it; and every one of Celery's
rejection paths (undecodable, not accepted, unknown format, invalid) records the message once
as a ``message_rejected`` event; a message of an unknown task that Celery can report is recorded
by its ``task_unknown`` signal instead (``tasks.guard.history``), one not even that as rejected.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from celery.exceptions import InvalidTaskError
from celery.worker.consumer import Consumer

from tasks import poison
from tasks.infra.redis_client import app_redis

log = logging.getLogger(__name__)

#: What a malformed message makes Celery's request builder raise; never a broker error, which
#: must reach Celery (it reconnects).
_CONTENT_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, UnicodeError, OverflowError)


class BeatkeeperConsumer(Consumer):
    """Celery's consumer: poison messages are rejected once and recorded, and a failed close of
    a broken connection no longer stops the worker."""

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        celery_handler = super().create_task_handler(*args, **kwargs)
        max_bytes = poison.max_message_bytes(self.app)

        def on_task_received(message: Any) -> Any:
            problem = poison.headers_problem(message, max_bytes=max_bytes)
            if problem is not None:
                return self.on_invalid_task(None, message, InvalidTaskError(problem))
            try:
                return celery_handler(message)
            except _CONTENT_ERRORS as exc:  # a shape no check above foresaw: still not the worker's end
                if message.acknowledged:
                    raise
                return self.on_invalid_task(None, message, InvalidTaskError(f"cannot make a task of it: {exc!r}"))

        return on_task_received

    def update_strategies(self) -> None:
        super().update_strategies()
        for name, strategy in list(self.strategies.items()):
            self.strategies[name] = _shape_checked(strategy)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        poison.record_rejected(app_redis(self.app), message, f"invalid: {exc}")
        super().on_invalid_task(body, message, exc)

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        poison.record_rejected(app_redis(self.app), message, f"cannot be decoded: {exc!r}")
        super().on_decode_error(message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        poison.record_rejected(app_redis(self.app), message, "not a task message (no task name)")
        super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        # Celery's report ends with the task_unknown signal, which records the message (history
        # row and alert: tasks.guard.history); only a message it cannot report is recorded here, so
        # one unknown-task message is one record and one alert.
        try:
            super().on_unknown_task(body, message, exc)
        except _CONTENT_ERRORS as error:  # Celery's own report needs an id the message may lack
            poison.record_rejected(app_redis(self.app), message, f"unknown task: {exc}")
            log.error("consumer: rejecting a message of an unknown task: %r", error)
            if not message.acknowledged:
                message.reject_log_error(log, self.connection_errors)

    def call_soon_ack(self, p: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return super().call_soon_ack(self._settling_on_a_live_channel(p), *args, **kwargs)

    def _settling_on_a_live_channel(self, settle: Callable[..., Any]) -> Callable[..., Any]:
        """``settle`` (a message's ``ack_log_error``/``reject_log_error``), made on the current
        channel when the message's own channel belongs to a broker connection closed since."""
        message = getattr(settle, "__self__", None)

        def settle_or_resettle(*args: Any, **kwargs: Any) -> Any:
            try:
                return settle(*args, **kwargs)
            except AttributeError as error:
                if message is None or not _channel_lost(message):
                    raise
                requeue = bool(args[2] if len(args) > 2 else kwargs.get("requeue", False))
                rejecting = getattr(settle, "__name__", "") == "reject_log_error"
                self._resettle(message, rejecting=rejecting, requeue=requeue, error=error)
                return None

        return settle_or_resettle

    def _resettle(self, message: Any, *, rejecting: bool, requeue: bool, error: Exception) -> None:
        what = f"{'reject' if rejecting else 'ack'} of message {message.delivery_tag}"
        consumer = self.task_consumer
        channel = getattr(consumer, "channel", None)
        if channel is None or channel is message.channel or getattr(channel, "closed", False):
            log.warning("consumer: %s dropped: its broker connection is gone (%r) and there is no new one; the "
                        "broker delivers it again after its visibility timeout", what, error)
            return
        try:
            if rejecting:
                channel.basic_reject(message.delivery_tag, requeue=requeue)
            else:
                channel.basic_ack(message.delivery_tag)
        except self.connection_errors as resettle_error:
            log.warning("consumer: %s dropped: %r; the broker delivers it again after its visibility timeout",
                        what, resettle_error)
            return
        log.warning("consumer: %s made on the new broker connection (its own was lost: %r)", what, error)

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError as close_error:
            # By then Celery has dropped its reference to the broken connection (the rest of the
            # method only warns about long-running tasks); reconnecting proceeds as usual.
            log.warning("consumer: closing the broken broker connection failed (%r); reconnecting anyway",
                        close_error)


def _channel_lost(message: Any) -> bool:
    """Whether ``message`` came on a channel that is closed or whose transport left its connection."""
    channel = message.channel
    if channel is None or getattr(channel, "closed", False):
        return True
    transport = getattr(channel, "connection", None)
    return transport is not None and getattr(transport, "client", True) is None


def _shape_checked(strategy: Callable[..., Any]) -> Callable[..., Any]:
    """``strategy``, refusing a body Celery's request builder would choke on (``tasks.poison``)."""

    def checked(message: Any, body: Any, *args: Any, **kwargs: Any) -> Any:
        decoded = message.payload if body is None else body  # kombu decodes once and keeps it
        problem = poison.shape_problem(message.headers, decoded)
        if problem is not None:
            raise InvalidTaskError(problem)
        return strategy(message, body, *args, **kwargs)

    return checked
