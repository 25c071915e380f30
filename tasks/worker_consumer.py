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
"""
from __future__ import annotations

import logging

from celery.worker.consumer import Consumer

log = logging.getLogger(__name__)


class BeatkeeperConsumer(Consumer):
    """Celery's consumer; a failed close of a broken connection no longer stops the worker."""

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError as close_error:
            # By then Celery has dropped its reference to the broken connection (the rest of the
            # method only warns about long-running tasks); reconnecting proceeds as usual.
            log.warning("consumer: closing the broken broker connection failed (%r); reconnecting anyway",
                        close_error)
