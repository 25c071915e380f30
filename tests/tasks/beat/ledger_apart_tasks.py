"""A ledger task whose ledger lives on a Redis of its own (``BEATKEEPER_TEST_LEDGER_URL``), apart
from the Redis the platform uses: when the platform's master dies and an asynchronous failover
loses its last writes, the ledger still holds every execution that happened.

Same ledger as ``tests.tasks.beat.ledger_tasks`` (field ``entry|fire instant`` -> executions, each
execution counted once), plus who executed it: ``ledger:by`` field -> the worker's host name.
"""
from __future__ import annotations

import os
import time
import uuid
from functools import lru_cache

import redis

from tasks.application import app
from tests.tasks.beat.ledger_tasks import _COUNT_ONCE, EXECUTED_AT_KEY, EXECUTIONS_KEY, LEDGER_KEY, ledger_field

LEDGER_URL = "BEATKEEPER_TEST_LEDGER_URL"
BY_KEY = "ledger:by"  # hash: run field -> host name of the worker whose execution counted first


@lru_cache(maxsize=1)
def ledger_client() -> redis.Redis:
    return redis.Redis.from_url(os.environ[LEDGER_URL], decode_responses=True, socket_timeout=5)


@app.task(name="tests.ledger.record_apart", bind=True, ignore_result=True, overlap="allow")
def record_apart(self) -> None:
    """Counts one execution of the instant beat sent it for, in the ledger apart."""
    field = ledger_field(self.request)
    client = ledger_client()
    client.eval(_COUNT_ONCE, 3, EXECUTIONS_KEY, LEDGER_KEY, EXECUTED_AT_KEY, uuid.uuid4().hex, field,
                repr(time.time()))
    client.hsetnx(BY_KEY, field, self.request.hostname or "")
