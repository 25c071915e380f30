"""The execution history: one :class:`RunRecord` per run attempt, kept in SQL.

Runs never wait on the database. ``HistoryStore.record`` appends the record, as JSON, to a
Redis list (one ``RPUSH``, the same Redis the broker already needs); ``drain`` moves the
list to SQL in batches. This is what makes both promises hold:

- a database that is down never fails a run and loses nothing: the records wait in Redis
  (a warning is logged) and the next drain after the database is back writes them;
- throughput: a batch insert every second costs far less than one transaction per run.

Exactly once: each record carries a ``record_id`` chosen when it is made, unique in the
table, and inserted with "on conflict do nothing". A drain reads a batch from the head of
the list, commits it, then trims the list only if it still holds the drain lock (one Lua
call): a drain that crashed after its commit, or lost its lock to a slow commit, makes the
next drain re-insert rows that already exist, which adds nothing.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone

import redis
from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from monitoring.history_home import HistoryHome
from monitoring.models import task_runs
from monitoring.namespace import namespaced
from monitoring.run_status import FINISHED_STATUSES, RUN_STATUSES, RunStatus  # noqa: F401 (read here)

log = logging.getLogger(__name__)


SPOOL_KEY = namespaced("beatkeeper:history:spool")  # Redis list of RunRecord JSON, oldest first
DRAIN_LOCK_SUFFIX = ":drain-lock"  # beside the spool: one drainer at a time
DRAIN_LOCK_TTL_S = 60.0  # longer than any batch insert (renewed per batch); a crashed drainer frees it after this
DEFAULT_BATCH_SIZE = 500
LOCAL_BUFFER_LIMIT = 100_000  # records kept in memory while Redis itself is unreachable

_INSTANT_FIELDS = ("fire_at", "received_at", "started_at", "finished_at")

# KEYS[1] drain lock, KEYS[2] spool; ARGV[1] our lock token, ARGV[2] records written, ARGV[3] lock TTL ms.
# -> records left, or -1 when the lock is no longer ours (another drainer owns the head now).
# A long backlog keeps its lock: each trimmed batch renews it.
_TRIM_IF_OWNER = """
    if redis.call('get', KEYS[1]) ~= ARGV[1] then
        return -1
    end
    redis.call('ltrim', KEYS[2], tonumber(ARGV[2]), -1)
    redis.call('pexpire', KEYS[1], ARGV[3])
    return redis.call('llen', KEYS[2])
"""
_RELEASE_IF_OWNER = """
    if redis.call('get', KEYS[1]) == ARGV[1] then
        return redis.call('del', KEYS[1])
    end
    return 0
"""


class InvalidRunRecord(ValueError):
    """A record that cannot be stored; carries the field and the value."""

    def __init__(self, field_name: str, value: object, problem: str):
        super().__init__(f"run record {field_name}={value!r}: {problem}")
        self.field_name = field_name
        self.value = value
        self.problem = problem


@dataclass(frozen=True)
class RunRecord:
    """One run attempt as the history stores it. Instants are timezone-aware (UTC)."""

    task_name: str
    task_id: str
    status: str
    finished_at: datetime
    entry: str = ""  # '' for a hand-triggered run
    attempt: int = 0  # Celery's retries count
    fire_at: datetime | None = None  # the scheduled instant; None for a hand-triggered run
    received_at: datetime | None = None
    started_at: datetime | None = None
    error_type: str | None = None
    error_message: str | None = None
    reason: str | None = None
    hostname: str = ""
    fencing_token: int | None = None
    pipeline_run_id: str | None = None
    record_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if self.status not in RUN_STATUSES:
            raise InvalidRunRecord("status", self.status, f"must be one of {', '.join(RUN_STATUSES)}")
        for name in _INSTANT_FIELDS:
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise InvalidRunRecord(name, value, "must be timezone-aware")

    @property
    def lateness_s(self) -> float | None:
        """Seconds from the scheduled fire instant to the start; None for a hand-triggered run."""
        if self.fire_at is None or self.started_at is None:
            return None
        return (self.started_at - self.fire_at).total_seconds()

    @property
    def duration_s(self) -> float | None:
        """Seconds the body ran; None for runs that never executed to an end."""
        if self.started_at is None or self.status not in FINISHED_STATUSES:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def to_row(self) -> dict:
        return {**self._fields(), "lateness_s": self.lateness_s, "duration_s": self.duration_s}

    def _fields(self) -> dict:
        # Not dataclasses.asdict: it deep-copies every datetime, ten times slower on the hot path.
        return {name: getattr(self, name) for name in _FIELD_NAMES}

    @classmethod
    def from_row(cls, row) -> RunRecord:
        return cls(**{name: row[name] for name in _FIELD_NAMES})

    def to_json(self) -> str:
        data = self._fields()
        for name in _INSTANT_FIELDS:
            data[name] = None if data[name] is None else data[name].isoformat()
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> RunRecord:
        data = json.loads(raw)
        for name in _INSTANT_FIELDS:
            if data.get(name) is not None:
                data[name] = datetime.fromisoformat(data[name])
        return cls(**data)


_FIELD_NAMES = tuple(f.name for f in fields(RunRecord))


def unix_to_utc(seconds: float | None) -> datetime | None:
    """A unix time as an aware UTC datetime (None stays None)."""
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)


@dataclass(frozen=True)
class DrainResult:
    """What one ``drain`` did: records written to SQL, records still spooled, the error that stopped it."""

    written: int
    pending: int
    error: str | None = None
    refused: str | None = None  # this process's database is not the deployment's (monitoring.history_home)


class HistoryStore:
    """Records runs through a Redis spool and reads them back from SQL.

    Thread-safe. ``redis_client`` is needed to record and drain; reading and purging use SQL only.
    """

    def __init__(self, engine: Engine | Callable[[], Engine], *, redis_client: redis.Redis | None = None,
                 spool_key: str = SPOOL_KEY, batch_size: int = DEFAULT_BATCH_SIZE):
        # A factory (``lambda: engine_for(url)``) is called at each use, so a forked child
        # gets its own engine instead of its parent's pooled connections.
        self._engine = engine
        self.redis = redis_client
        self.spool_key = spool_key
        self.lock_key = spool_key + DRAIN_LOCK_SUFFIX
        self.batch_size = batch_size
        self._unspooled: deque[str] = deque(maxlen=LOCAL_BUFFER_LIMIT)
        self._unspooled_lock = threading.Lock()
        self._db_down_since: float | None = None
        self._home = HistoryHome(spool_key)  # one database per spool
        self._refused_logged: str | None = None
        self._spooled_since_drain = False  # this process's own records oblige it to check where they go

    @property
    def engine(self) -> Engine:
        return self._engine if isinstance(self._engine, Engine) else self._engine()

    # -- the hot path ------------------------------------------------------------------------
    def record(self, record: RunRecord, *, pipeline: redis.client.Pipeline | None = None) -> None:
        """Spool one record for the next drain: one round trip. Never raises: a run must not fail
        on its history (while Redis is unreachable the record waits in this process's memory).

        ``pipeline``: commands other middlewares queued for the end of the run; the record joins
        them and the whole pipeline is sent at once, so history adds no round trip of its own.
        """
        payloads = [record.to_json()]
        self._spooled_since_drain = True
        with self._unspooled_lock:
            if self._unspooled:
                payloads = [*self._unspooled, *payloads]
                self._unspooled.clear()
        pipe = pipeline if pipeline is not None else self.redis.pipeline(transaction=False)
        pipe.rpush(self.spool_key, *payloads)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            self._keep_in_memory(payloads, exc)

    def _push_unspooled(self) -> None:
        with self._unspooled_lock:
            payloads = list(self._unspooled)
            self._unspooled.clear()
        if not payloads:
            return
        try:
            self.redis.rpush(self.spool_key, *payloads)
        except redis.RedisError as exc:
            self._keep_in_memory(payloads, exc)

    def _keep_in_memory(self, payloads: list[str], exc: Exception) -> None:
        # The same record spooled twice (a pipeline error after its RPUSH went through) is
        # harmless: its record_id makes the second insert a no-op.
        with self._unspooled_lock:
            self._unspooled.extendleft(reversed(payloads))
            kept = len(self._unspooled)
        log.warning("history: Redis unreachable (%r); %d record(s) kept in memory until it is back", exc, kept)

    # -- spool -> SQL ------------------------------------------------------------------------
    def drain(self, *, max_batches: int | None = None) -> DrainResult:
        """Move spooled records to SQL, a batch at a time, until the spool is empty.

        Returns at once (writing nothing) when another process holds the drain lock.
        A database error stops the drain and leaves the records spooled.
        """
        self._push_unspooled()
        spooled_here, self._spooled_since_drain = self._spooled_since_drain, False
        # An empty spool asks nothing of the database, unless this process spooled records: then it
        # says whether it could drain them, even when another drainer was quicker.
        if spooled_here or self.redis.llen(self.spool_key):
            try:
                refused = self.home_refusal()
            except (SQLAlchemyError, LookupError) as exc:
                error = self._db_down(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
                return DrainResult(written=0, pending=self.pending_count(), error=error)
            if refused is not None:
                return DrainResult(written=0, pending=self.pending_count(), refused=refused)
        token = uuid.uuid4().hex
        if not self.redis.set(self.lock_key, token, nx=True, px=int(DRAIN_LOCK_TTL_S * 1000)):
            return DrainResult(written=0, pending=self.pending_count())
        written, batches = 0, 0
        try:
            while max_batches is None or batches < max_batches:
                raw = self.redis.lrange(self.spool_key, 0, self.batch_size - 1)
                if not raw:
                    break
                records = _decoded(raw)
                try:
                    self.write(records)
                except SQLAlchemyError as exc:
                    return DrainResult(written=written, pending=self.pending_count(), error=self._db_down(exc))
                left = self.redis.eval(_TRIM_IF_OWNER, 2, self.lock_key, self.spool_key, token, len(raw),
                                       int(DRAIN_LOCK_TTL_S * 1000))
                if int(left) < 0:
                    log.warning("history: drain lock expired mid-drain; leaving the rest to its new owner")
                    break
                written += len(records)
                batches += 1
        finally:
            self.redis.eval(_RELEASE_IF_OWNER, 1, self.lock_key, token)
        self._db_back(written)
        return DrainResult(written=written, pending=self.pending_count())

    def home_refusal(self) -> str | None:
        """Why this store's database may not take the spool (None: it is the deployment's), logged
        once per reason; raises when the database cannot be read (``monitoring.history_home``)."""
        refused = self._home.refusal(self.engine, self.redis)
        if refused is not None and refused != self._refused_logged:
            log.error("history: %s", refused)
        self._refused_logged = refused
        return refused

    def pending_count(self) -> int:
        """Records spooled (in Redis and in this process's memory) and not yet in SQL."""
        with self._unspooled_lock:
            local = len(self._unspooled)
        return local + int(self.redis.llen(self.spool_key))

    def _db_down(self, exc: SQLAlchemyError) -> str:
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if self._db_down_since is None:
            self._db_down_since = time.monotonic()
            hint = " (no history table: run `beatkeeper db upgrade`)" if _missing_table(exc) else ""
            log.warning("history: database unavailable (%s)%s; records stay spooled in Redis until it is back",
                        message, hint)
        return message

    def _db_back(self, written: int) -> None:
        if self._db_down_since is not None and written:
            log.warning("history: database back after %.0f s; spooled records written",
                        time.monotonic() - self._db_down_since)
            self._db_down_since = None

    # -- SQL ---------------------------------------------------------------------------------
    def write(self, records: Sequence[RunRecord]) -> int:
        """Insert ``records`` in one transaction; a record already stored (same record_id) is left alone.

        Returns how many were new.
        """
        if not records:
            return 0
        rows = [r.to_row() for r in records]
        with self.engine.begin() as connection:
            dialect = connection.dialect.name
            if dialect in ("sqlite", "postgresql"):
                # RETURNING makes SQLAlchemy send multi-row VALUES pages ("insertmanyvalues")
                # instead of one statement per row, and tells which rows were new.
                statement = (_dialect_insert(dialect)(task_runs).on_conflict_do_nothing(index_elements=["record_id"])
                             .returning(task_runs.c.record_id))
                return len(connection.execute(statement, rows).all())
            ids = [row["record_id"] for row in rows]
            known = set(connection.scalars(select(task_runs.c.record_id).where(task_runs.c.record_id.in_(ids))))
            fresh = [row for row in rows if row["record_id"] not in known]
            if fresh:
                connection.execute(insert(task_runs), fresh)
            return len(fresh)

    def query(self, *, task: str | None = None, entry: str | None = None, status: str | None = None,
              since: datetime | None = None, limit: int = 50) -> list[RunRecord]:
        """Stored records matching every filter given, newest (by finish) first."""
        statement = select(task_runs)
        if task is not None:
            statement = statement.where(task_runs.c.task_name == task)
        if entry is not None:
            statement = statement.where(task_runs.c.entry == entry)
        if status is not None:
            statement = statement.where(task_runs.c.status == status)
        if since is not None:
            statement = statement.where(task_runs.c.finished_at >= since)
        statement = statement.order_by(task_runs.c.finished_at.desc(), task_runs.c.id.desc()).limit(limit)
        with self.engine.connect() as connection:
            return [RunRecord.from_row(row) for row in connection.execute(statement).mappings()]

    def count(self, *, status: str | None = None, task: str | None = None) -> int:
        """How many records are stored (optionally of one status / task)."""
        statement = select(func.count()).select_from(task_runs)
        if status is not None:
            statement = statement.where(task_runs.c.status == status)
        if task is not None:
            statement = statement.where(task_runs.c.task_name == task)
        with self.engine.connect() as connection:
            return int(connection.scalar(statement))

    def purge(self, *, older_than: datetime, batch_size: int = 1000) -> int:
        """Delete records that finished before ``older_than``, ``batch_size`` rows per transaction.

        Small transactions keep the table writable (SQLite has one writer) while a long backlog goes.
        """
        deleted = 0
        while True:
            oldest = (select(task_runs.c.id).where(task_runs.c.finished_at < older_than)
                      .order_by(task_runs.c.id).limit(batch_size))
            with self.engine.begin() as connection:
                count = connection.execute(delete(task_runs).where(task_runs.c.id.in_(oldest))).rowcount
            deleted += count
            if count < batch_size:
                return deleted


def _missing_table(exc: SQLAlchemyError) -> bool:
    text = str(exc).lower()
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def _decoded(raw: Iterable[str | bytes]) -> list[RunRecord]:
    records = []
    for item in raw:
        try:
            records.append(RunRecord.from_json(item))
        except (ValueError, TypeError, KeyError) as exc:  # never block the spool on one bad item
            log.error("history: dropping an unreadable spooled record (%r): %.200r", exc, item)
    return records


def _dialect_insert(dialect: str):
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert
        return sqlite_insert
    from sqlalchemy.dialects.postgresql import insert as postgresql_insert
    return postgresql_insert
