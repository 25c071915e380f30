"""Run a schedule entry now, by hand, as beat would run it: ``beatkeeper trigger ENTRY`` and the
dashboard share :func:`trigger_entry`.

Everything comes from what beat published, never from the caller: the entry's task, arguments
and message options (queue, expires, time limit) from its stored redbeat definition; its
policies the worker reads from the published entry policies (trusting the entry's name only
when beat published it for this very task). The message carries the entry's name and no fire
instant, so the run is a *manual run of that entry*: a fresh run id (its task id,
``tasks.run_ids.run_id_for``), the entry's overlap/lock/budget and retry policy, its name in
the history, and ``<task> [<entry> @ manual]`` in Flower (``tasks.headers.run_label``).
Who asked is recorded as an ``entry_triggered`` event.
"""
from __future__ import annotations

import json
import uuid
from typing import Any

from monitoring.events import EventKind, record_event
from tasks import headers
from tasks.beat.entry import BeatkeeperEntry
from tasks.guard.identity import DEAD_LETTERS_KEY
from tasks.dynamic.entries import ENTRIES_KEY as DYNAMIC_ENTRIES_KEY
from tasks.policy import PUBLISHED_ENTRY_POLICIES_KEY
from tasks.infra.redis_client import app_redis
from tasks.run_ids import is_guarded

TRIGGERED_EVENT = EventKind.ENTRY_TRIGGERED


class TriggerError(Exception):
    """The entry cannot be triggered (one line saying why)."""


def trigger_entry(app: Any, entry: str, *, who: str) -> str:
    """Send one manual run of schedule entry ``entry``; returns its task id.

    ``who``: the person or surface that asked (recorded with the event and on the message).
    Raises TriggerError when beat has not published the entry (or published it inconsistently).
    """
    client = app_redis(app)
    with client.pipeline(transaction=False) as pipe:
        pipe.hget(PUBLISHED_ENTRY_POLICIES_KEY, entry)
        pipe.hget(app.conf.redbeat_key_prefix + entry, "definition")
        pipe.hget(DYNAMIC_ENTRIES_KEY, entry)
        published, definition, dynamic = pipe.execute()
    if published is None and dynamic is not None:  # a dynamic entry following its task's declaration
        published = json.loads(dynamic)["policy"]
    if published is None or definition is None:
        raise TriggerError(f"entry {entry!r} is not scheduled: beat has published no such entry "
                           f"(`beatkeeper plan` lists the entries; is beat running?)")
    published = json.loads(published)
    stored = BeatkeeperEntry.decode_definition(definition)
    if stored["task"] != published.get("task"):
        raise TriggerError(f"entry {entry!r}: beat is publishing a new schedule (stored task {stored['task']!r}, "
                           f"published {published.get('task')!r}); try again in a few seconds")
    task_id = _send(app, stored["task"], list(stored.get("args") or []), dict(stored.get("kwargs") or {}),
                    dict(stored.get("options") or {}), entry=entry, who=who)
    record_event(client, TRIGGERED_EVENT, entry, task=stored["task"], task_id=task_id, who=who)
    return task_id


def requeue_dead_letter(app: Any, letter_id: str, *, who: str) -> str:
    """Send a dead-lettered run again, as a manual run of its entry (or its task alone), with its
    own arguments; the letter leaves the list. ``letter_id``: its run id or task id. Returns the new task id.

    The letter is removed first (``LREM``: of two people requeueing it, one gets it) and put back
    if the send fails."""
    client = app_redis(app)
    for raw in client.lrange(DEAD_LETTERS_KEY, 0, -1):
        letter = json.loads(raw)
        if letter_id in (letter.get("run_id"), letter.get("task_id")):
            break
    else:
        raise TriggerError(f"no dead letter {letter_id!r} (`beatkeeper dead-letters` lists them by run id)")
    if not client.lrem(DEAD_LETTERS_KEY, 1, raw):
        raise TriggerError(f"dead letter {letter_id!r} was requeued meanwhile by someone else")
    try:
        task_id = _send(app, letter["task"], list(letter.get("args") or []), dict(letter.get("kwargs") or {}), {},
                        entry=letter.get("entry") or "", who=who)
    except BaseException:
        client.lpush(DEAD_LETTERS_KEY, raw)
        raise
    record_event(client, TRIGGERED_EVENT, letter.get("entry") or letter["task"], task=letter["task"],
                 task_id=task_id, who=who, requeued=letter.get("run_id"))
    return task_id


def _send(app: Any, task_name: str, args: list, kwargs: dict, options: dict[str, Any], *, entry: str,
          who: str) -> str:
    """Publish one hand run with a fresh task id (so a fresh run id); the entry's name when it has one."""
    sent = {headers.TRIGGERED_BY: who}
    if entry:
        sent[headers.ENTRY] = entry
    options["headers"] = {**options.get("headers", {}), **sent}
    task_id = str(uuid.uuid4())
    task = app.tasks.get(task_name)
    if is_guarded(app, task):
        task.apply_async(args, kwargs, task_id=task_id, **options)
    else:  # a task this process does not import: named as the worker's guard would name it
        app.send_task(task_name, args, kwargs, task_id=task_id,
                      shadow=headers.run_label(task_name, options["headers"]), **options)
    return task_id

