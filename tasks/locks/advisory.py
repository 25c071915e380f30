"""Exclusion that lives in the database, for sweeps over database rows.

On Postgres: a session-level advisory lock (``pg_try_advisory_lock``) held on a dedicated
connection for the sweep's duration. It needs no TTL and no renewal: it belongs to the
database session, so a worker that dies (SIGKILL, OOM, lost host) frees it the moment
Postgres sees its connection close, and nothing outside the database can hold it stale.
The sweep may run its queries on ``lease.connection`` to stay inside that session.

On SQLite (no advisory locks): the Redis lock (``tasks.locks.fenced.lock_held``) under
``beatkeeper:dblock:<name>``, renewed while held and expiring ``ttl_s`` after a crash.

    with database_lock(engine, "sweep:stale-prices", redis_client=client) as lease:
        if not lease:
            return  # another sweep is running
        ...
"""
from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import redis
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from monitoring.namespace import namespaced
from tasks.locks.fenced import lock_held

log = logging.getLogger(__name__)

REDIS_FALLBACK_PREFIX = namespaced("beatkeeper:dblock:")


class NoLockBackend(RuntimeError):
    """The database has no advisory locks and no Redis client was given to fall back on."""

    def __init__(self, name: str, dialect: str):
        super().__init__(f"lock {name!r}: {dialect} has no advisory locks; pass redis_client to fall back")
        self.name = name
        self.dialect = dialect


@dataclass
class DatabaseLease:
    """What ``database_lock`` yields: truthy when acquired."""

    name: str
    acquired: bool
    backend: str  # "postgres" or "redis"
    advisory_key: int | None = None  # the 64-bit key passed to pg_try_advisory_lock
    connection: Connection | None = None  # the Postgres session holding the lock
    fencing_token: int | None = None  # the Redis fallback's token

    def __bool__(self) -> bool:
        return self.acquired


def advisory_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name`` (same in every process and release)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextmanager
def database_lock(engine: Engine, name: str, *, redis_client: redis.Redis | None = None,
                  ttl_s: float = 60.0) -> Iterator[DatabaseLease]:
    """Try the lock named ``name`` once, without waiting; release it on exit if acquired."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, name) as lease:
            yield lease
        return
    if redis_client is None:
        raise NoLockBackend(name, engine.dialect.name)
    with lock_held(redis_client, REDIS_FALLBACK_PREFIX + name, ttl_s=ttl_s, holder={"lock": name}) as held:
        yield DatabaseLease(name=name, acquired=bool(held), backend="redis", fencing_token=held.fencing_token)


@contextmanager
def _advisory_lock(engine: Engine, name: str) -> Iterator[DatabaseLease]:
    key = advisory_key(name)
    conn = engine.connect()
    try:
        acquired = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
        conn.commit()  # the lock is the session's, not the transaction's: end the implicit one
        lease = DatabaseLease(name=name, acquired=acquired, backend="postgres", advisory_key=key,
                              connection=conn if acquired else None)
        try:
            yield lease
        finally:
            if acquired:
                _unlock(conn, key, name)
    finally:
        conn.close()


def _unlock(conn: Connection, key: int, name: str) -> None:
    try:
        if conn.in_transaction():
            conn.rollback()  # a sweep that left a failed transaction open would block the unlock
        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        conn.commit()
    except DBAPIError as exc:
        # The session is broken; a pooled connection must never carry the lock on to another
        # user, so discard it: closing the session frees the lock in Postgres.
        log.warning("advisory unlock of %s failed (%r); discarding the connection", name, exc)
        conn.invalidate()


def holders(engine: Engine, name: str) -> list[dict[str, Any]]:
    """Postgres backends holding the advisory lock ``name`` (pid, application), for operators."""
    key = advisory_key(name)
    query = text("""
        SELECT l.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted
          AND l.classid = ((:key >> 32) & 4294967295)::oid AND l.objid = (:key & 4294967295)::oid
    """)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query, {"key": key})]
