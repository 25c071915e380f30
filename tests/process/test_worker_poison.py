"""Poison messages published raw (kombu) to a real prefork worker: each is rejected once, recorded
once with an alert, and the worker stays up and keeps running normal tasks."""
from __future__ import annotations

import json
import pickle
import time
import uuid
from datetime import datetime, timezone

import pytest

from monitoring.alerts import Severity
from monitoring.events import read_events
from monitoring.rules.base import PlatformKeys, RuleContext
from monitoring.rules.events import EventsRule
from monitoring.rules.settings import RuleSettings
from tasks import headers
from tasks.poison import DEFAULT_MAX_MESSAGE_BYTES
from tests.tasks.beat import ledger_tasks as lt
from tests.process.test_worker_faults import start_worker
from tests.servers import wait_until

pytestmark = pytest.mark.process
TASK = lt.record.name
JSON = ("application/json", "utf-8")


def _task_headers(**extra) -> dict:
    return {"lang": "py", "task": TASK, "id": uuid.uuid4().hex, "retries": 0, **extra}


#: name -> (body, content type, encoding, headers, what the rejection's reason says)
POISONS = {
    "scalar body": (b"42", *JSON, _task_headers(), "not [args, kwargs, embed]"),
    "list of the wrong length": (b"[[], {}]", *JSON, _task_headers(), "not [args, kwargs, embed]"),
    "dict missing fields": (json.dumps({"task": TASK}).encode(), *JSON, {}, "field 'id'"),
    "10 MB body": (json.dumps([["x" * 10_000_000], {}, {}]).encode(), *JSON, _task_headers(), "byte limit"),
    "pickle": (pickle.dumps(([], {}, {})), "application/x-python-serialize", "binary", _task_headers(), "invalid"),
    "text/plain": (b"hello", "text/plain", "utf-8", _task_headers(), "invalid"),
    "task header not a string": (b"[[], {}, {}]", *JSON, {**_task_headers(), "task": ["x"]}, "header 'task'"),
    "no id header": (b"[[], {}, {}]", *JSON, {"lang": "py", "task": TASK}, "header 'id'"),
    # read only when the pool is handed the request: an error there would hold a pool slot for ever
    "time limit not a pair": (b"[[], {}, {}]", *JSON, _task_headers(timelimit="abc"), "timelimit"),
    "stamped headers not a list": (b"[[], {}, {}]", *JSON, _task_headers(stamped_headers=5), "stamped_headers"),
}


def publish_raw(app, body: bytes, content_type: str, encoding: str, message_headers: dict) -> None:
    with app.producer_pool.acquire(block=True) as producer:
        producer.publish(body, exchange="default", routing_key="default", content_type=content_type,
                         content_encoding=encoding, headers=message_headers, declare=[app.amqp.queues["default"]])


def run_a_normal_task(redis_client, probe: str) -> None:
    fire_at = datetime.now(timezone.utc).replace(microsecond=0)
    lt.record.apply_async(headers=headers.dispatch_headers(probe, fire_at))
    field = f"{probe}|{fire_at.isoformat()}"
    wait_until(lambda: lt.ledger(redis_client).get(field) == 1, timeout_s=30, what=f"the normal task {probe} to run")


def test_poison_messages_are_rejected_once_recorded_and_alerted_and_the_worker_keeps_working(
        app, processes, redis_client):
    assert len(POISONS["10 MB body"][0]) > DEFAULT_MAX_MESSAGE_BYTES
    worker = start_worker(processes, "poisoned", "-c", "1")
    rule = EventsRule()
    context = RuleContext(now=time.time(), client=redis_client, specs={}, settings=RuleSettings(),
                          keys=PlatformKeys(), first_start=0.0)
    assert rule.evaluate(context) == []  # the monitor's cursor starts here
    run_a_normal_task(redis_client, "probe-first")

    for number, (name, (body, content_type, encoding, message_headers, reason)) in enumerate(POISONS.items()):
        publish_raw(app, body, content_type, encoding, message_headers)
        events = wait_until(lambda: read_events(redis_client, kind="message_rejected")[number:], timeout_s=30,
                            what=f"the {name} message to be rejected")
        assert reason in events[0].data["reason"], (name, events[0].data)
        run_a_normal_task(redis_client, f"probe-{number}")  # the worker still takes and runs tasks
        assert worker.poll() is None, f"the worker exited after the {name} message"

    rejected = read_events(redis_client, kind="message_rejected")
    assert len(rejected) == len(POISONS)  # each recorded once: none came back
    assert redis_client.llen("default") == 0 and not redis_client.hlen("unacked")
    assert sum(lt.ledger(redis_client).values()) == len(POISONS) + 1  # only the normal tasks ran
    context.now += 10
    alerts = {a.subject: a for a in rule.evaluate(context) if a.rule == "message_rejected"}
    assert alerts[TASK].severity is Severity.CRITICAL
    assert sum(a.details["count"] for a in alerts.values()) == len(POISONS)
    assert worker.poll() is None
