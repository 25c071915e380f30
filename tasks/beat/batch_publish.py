"""A tick's dispatches in few broker round trips, still published before they are recorded.

Celery's ``apply_async`` hands each message to kombu's producer; inside kombu's
``Producer.batch()`` the Redis transport buffers the message's final commands (its ``LPUSH``)
in one pipeline instead of sending each at once, and sends them all when the batch ends.
Everything before that stays Celery's and kombu's own: the message format, routing,
``expires``, headers, and the ``before_task_publish``/``after_task_publish`` signals (the
latter fires when the producer took the message, i.e. once it is buffered). Transports
without batches, and kombu before 5.7, publish each message at once, as before.

Publish-then-record holds per batch: beat's records of what it sent (``last_run_at``, the
delivery watch) go in a pipeline executed only once the batch reached the broker. A batch
whose flush failed is recorded nowhere: its entries stay due and go out again at the next
tick; a copy that did reach the broker is the same run (``tasks.guard.identity``: entry + instant)
and runs once.

Celery sends a direct exchange's messages through the anonymous exchange (the queue named
as routing key), so no binding is looked up per message; a topic or fanout exchange's
binding table is still read by kombu for each message (one ``SMEMBERS``), outside the batch.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Iterator, Sequence, TypeVar

try:
    from kombu.transport.redis import BatchPublishError
except ImportError:  # kombu before 5.7 has no publish batches: each message goes out at once, none fails here
    class BatchPublishError(Exception):  # type: ignore[no-redef]
        """Stands for kombu 5.7's error, which older kombu never raises."""
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

BATCH_ENTRIES = 5000  # entries per batch: one pipeline each (their messages are held in memory until it is sent)
BATCH = "a batch of due entries"  # what a failed flush is logged (and backed off) as
MAX_COMMANDS = 1_000_000  # kombu flushes a batch early past this many commands: never within one of ours

T = TypeVar("T")


def chunks(items: Sequence[T], size: int = BATCH_ENTRIES) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


class BatchNotSent(Exception):
    """A batch's flush failed: whether its messages reached the broker is unknown."""


@contextmanager
def publish_then_record(producer, client) -> Iterator:
    """A records pipeline for what is published inside the block; the block's publishes go out
    in one round trip at its end, then the records in one more.

    An exception inside the block sends and records nothing. A failed flush records nothing and
    raises the Redis error behind it (the tick's "Redis unavailable" path), else ``BatchNotSent``."""
    with client.pipeline(transaction=False) as records:
        try:
            # a producer without batches (kombu before 5.7, a stand-in) publishes at once
            with producer.batch(max_size=MAX_COMMANDS) if hasattr(producer, "batch") else nullcontext():
                yield records
        except BatchPublishError as exc:
            records.reset()
            cause = exc.__cause__
            if isinstance(cause, (RedisConnectionError, RedisTimeoutError)):
                raise cause from exc
            raise BatchNotSent(str(cause or exc)) from exc
        except BaseException:
            records.reset()
            raise
        records.execute()

