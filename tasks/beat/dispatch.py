"""Sending one instant of an entry to the broker, and sending again what the broker lost.

Every dispatch carries the entry's name and scheduled instant (and the beat's fence) in its
headers, never its policies: the worker takes those from what beat published. A dispatch of a
guarded task is watched until a worker receives it (``tasks.beat.delivery_watch``).
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from monitoring.events import EventKind, record_event
from tasks import headers
from tasks.infra import broker
from tasks.beat import delivery_watch
from tasks.beat.entry import BeatkeeperEntry
from tasks.run_ids import is_guarded

logger = logging.getLogger("beatkeeper.beat")


def send(app: Any, entry: BeatkeeperEntry, fire_at: datetime, producer, *, fence: int | None,
         expires_at: float | None = None) -> delivery_watch.Dispatch | None:
    """Send one instant of ``entry``; the dispatch to watch (None for a task that cannot be
    watched: one this process does not know as a guarded task claims no run id)."""
    options = dict(entry.options)
    # Entry and instant only: the worker takes the entry's policies from what beat published.
    options["headers"] = {**options.get("headers", {}), **headers.dispatch_headers(entry.name, fire_at)}
    if fence is not None:
        options["headers"][headers.BEAT_FENCE] = str(fence)
    sent_at = app.now().timestamp()
    if expires_at is not None:  # a message sent again keeps the expiry of the first
        options["expires"] = datetime.fromtimestamp(expires_at, timezone.utc)
    elif options.get("expires"):
        expires_at = sent_at + float(options["expires"])
    task = app.tasks.get(entry.task)
    if not is_guarded(app, task):
        app.send_task(entry.task, entry.args, entry.kwargs, producer=producer, **options)
        return None
    result = task.apply_async(entry.args, entry.kwargs, producer=producer, **options)
    queue = app.amqp.router.route(options, entry.task, entry.args, entry.kwargs)["queue"].name
    return delivery_watch.Dispatch(entry=entry.name, fire_at=fire_at.astimezone(timezone.utc).isoformat(),
                                   task_id=result.id, queue=queue, sent_at=sent_at, expires_at=expires_at)


def resend_lost(scheduler: Any, client, now: datetime) -> None:
    """Send again what the broker lost after accepting it (``tasks.beat.delivery_watch``), through
    the scheduler's own ``_publish`` and entry loading."""
    app = scheduler.app
    unacked_key = app.conf.broker_transport_options.get("unacked_key", "unacked")
    broker_client = broker.broker_redis(app, client)  # where the messages are (None: RabbitMQ)
    if broker_client is None:
        return
    for lost in delivery_watch.sweep(client, now=now.timestamp(), unacked_key=unacked_key, broker=broker_client):
        entries = scheduler._load_entries(client, [scheduler.Entry.generate_key(app, lost.entry)])
        sent = None
        if entries:  # else the entry left the schedule: nothing to send for it
            try:
                sent = scheduler._publish(entries[0], datetime.fromisoformat(lost.fire_at), scheduler.producer,
                                          expires_at=lost.expires_at)
            except Exception as exc:  # still refused: the next sweep tries again
                logger.error("beat: could not send %s for %s again: %r", lost.entry, lost.fire_at, exc)
                continue
        with client.pipeline(transaction=False) as records:  # after the publish, as every record
            records.zrem(delivery_watch.PENDING_KEY, lost.member())
            if sent is not None:
                delivery_watch.watch(records, lost.resent(sent.task_id, sent.sent_at))
            records.execute()
        if not entries:
            logger.warning("beat: %s for %s never reached a worker; the entry is no longer scheduled",
                           lost.entry, lost.fire_at)
            continue
        logger.warning("beat: %s for %s never reached a worker; sent it again", lost.entry, lost.fire_at)
        record_event(client, EventKind.DISPATCH_RESENT, lost.entry, fire_at=lost.fire_at, run_id=lost.run_id,
                     resends=lost.resends + 1)
