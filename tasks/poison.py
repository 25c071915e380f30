"""Poison messages: what a worker refuses to take from the broker, and the record it leaves.

A task message is poison when no run can be made of it: a body over the size cap, headers that
are not Celery's (no string ``task``/``id``), a body that does not decode as JSON (kombu refuses
other content types: ``accept_content``), or a decoded body of the wrong shape (protocol 2 is
``[args, kwargs, embed]``; protocol 1 a mapping with ``task``, ``id``, ``args``, ``kwargs``).
Celery would crash its consumer on several of these ("Unrecoverable error"): the message goes
back to the queue and every worker that takes it dies, for ever. ``tasks.worker_consumer``
rejects each one once instead (not requeued) and records it here: a ``message_rejected`` event
the monitor alerts on (``monitoring.rules.events``).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import redis

from monitoring.events import EventKind, record_event

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024  # a schedule's args are small; a bigger body is an accident or an attack
EXCERPT_CHARS = 200  # of the body, kept in the event for a person to recognise the message


def max_message_bytes(app: Any) -> int:
    """The largest task message a worker of ``app`` accepts (``BEATKEEPER_MAX_MESSAGE_BYTES``), in bytes."""
    return int(app.conf.get("beatkeeper_max_message_bytes") or DEFAULT_MAX_MESSAGE_BYTES)


def headers_problem(message: Any, *, max_bytes: int) -> str | None:
    """What makes ``message`` poison before its body is decoded; None if nothing."""
    size = len(message.body or b"")
    if size > max_bytes:
        return f"body of {size} bytes is over the {max_bytes}-byte limit"
    headers = message.headers
    if headers is None:
        return None  # protocol 1: the body says what it is (shape_problem)
    if not isinstance(headers, Mapping):
        return f"headers are a {type(headers).__name__}, not a mapping"
    if "task" in headers:
        for name in ("task", "id"):
            if not isinstance(headers.get(name), str) or not headers[name]:
                return f"header {name!r} is {_short(headers.get(name))}, not a non-empty string"
    return _fields_problem(headers)


def _fields_problem(fields: Mapping[str, Any]) -> str | None:
    """Fields Celery reads only once the pool is handed the request, where an error would leave the
    worker's pool slot taken: checked first."""
    limits = fields.get("timelimit")
    if limits is not None and not (isinstance(limits, (list, tuple)) and len(limits) == 2
                                   and all(_is_number(limit) or limit is None for limit in limits)):
        return f"timelimit is {_short(limits)}, not [hard s, soft s]"
    for name in ("root_id", "parent_id", "group", "shadow", "origin"):
        if fields.get(name) is not None and not isinstance(fields[name], str):
            return f"{name} is {_short(fields[name])}, not a string"
    stamped = fields.get("stamped_headers")
    if stamped is not None and not (isinstance(stamped, list) and all(isinstance(name, str) for name in stamped)):
        return f"stamped_headers is {_short(stamped)}, not a list of names"
    if fields.get("stamps") is not None and not isinstance(fields["stamps"], Mapping):
        return f"stamps is {_short(fields['stamps'])}, not a mapping"
    retries = fields.get("retries")
    if retries is not None and not (isinstance(retries, int) and not isinstance(retries, bool) and retries >= 0):
        return f"retries is {_short(retries)}, not a count"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def shape_problem(headers: Mapping[str, Any] | None, body: Any) -> str | None:
    """What makes a decoded task body unusable; None if Celery can make a request of it."""
    if isinstance(headers, Mapping) and "task" in headers and not (isinstance(body, Mapping) and "args" in body):
        if not isinstance(body, (list, tuple)) or len(body) != 3:
            return f"body is {_short(body)}, not [args, kwargs, embed]"
        args, kwargs, embed = body
        if not isinstance(embed, (Mapping, type(None))):
            return f"body's embed is {_short(embed)}, not a mapping"
    else:  # protocol 1, or Celery's hybrid: a mapping carrying args and kwargs itself
        if not isinstance(body, Mapping):
            return f"body is {_short(body)}, not a mapping"
        for name in ("task", "id"):
            source = headers if isinstance(headers, Mapping) and name in headers else body
            if not isinstance(source.get(name), str) or not source[name]:
                return f"field {name!r} is {_short(source.get(name))}, not a non-empty string"
        args, kwargs = body.get("args", ()), body.get("kwargs", {})
        problem = _fields_problem(body)
        if problem is not None:
            return problem
    if not isinstance(args, (list, tuple)):
        return f"args are {_short(args)}, not a list"
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        return f"kwargs are {_short(kwargs)}, not a mapping of names"
    return None


def record_rejected(client: redis.Redis, message: Any, reason: str) -> None:
    """One ``message_rejected`` event for ``message`` (never raises: the rejection goes on)."""
    headers = message.headers if isinstance(message.headers, Mapping) else {}
    task, task_id = headers.get("task"), headers.get("id")
    delivery = message.delivery_info or {}
    try:
        record_event(client, EventKind.MESSAGE_REJECTED, task if isinstance(task, str) and task else "(unnamed)",
                     reason=reason, task_id=task_id if isinstance(task_id, str) else _short(task_id), content_type=message.content_type,
                     body_bytes=len(message.body or b""), queue=delivery.get("routing_key"),
                     body=_short(message.body))
    except redis.RedisError as exc:
        log.error("poison: could not record the rejected message (%r): %s", exc, reason)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + f"... ({len(text)} chars)"
