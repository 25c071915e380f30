"""Where the execution history lives: an SQLAlchemy engine from ``DATABASE_URL``, or SQLite.

| variable                 | default                          | meaning                        |
|--------------------------|----------------------------------|--------------------------------|
| DATABASE_URL             | sqlite:///<data dir>/history.db  | any SQLAlchemy URL             |
| BEATKEEPER_DATA_DIR      | ./var                            | where the SQLite file goes     |
| BEATKEEPER_HISTORY_DAYS  | 30                               | rows older than this are purged|

SQLite runs in WAL mode: readers (``beatkeeper history``, the monitor) never block the
writer that drains the spool, and a crash loses at most the last uncommitted batch.
"""
from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from schedules.errors import SettingsError

DEFAULT_DATA_DIR = "./var"
DEFAULT_HISTORY_DAYS = 30
SQLITE_FILE_NAME = "history.db"
SQLITE_BUSY_TIMEOUT_MS = 5000  # a second writer waits this long for the lock instead of failing at once
CONNECT_TIMEOUT_S = 5  # a database that is down must not hold a drain for long

_engines: dict[tuple[int, str], Engine] = {}
_engines_lock = threading.Lock()


class HistorySettingError(SettingsError):
    """A history setting (DATABASE_URL, BEATKEEPER_HISTORY_DAYS...) that cannot be used."""


def data_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The platform's data directory (``BEATKEEPER_DATA_DIR``, default ``./var``)."""
    return Path(environ.get("BEATKEEPER_DATA_DIR") or DEFAULT_DATA_DIR)


def database_url(environ: Mapping[str, str] = os.environ) -> str:
    """``DATABASE_URL``, or the SQLite file under the data directory."""
    url = (environ.get("DATABASE_URL") or "").strip()
    if url:
        return url
    return f"sqlite:///{(data_dir(environ) / SQLITE_FILE_NAME).resolve()}"


def history_days(environ: Mapping[str, str] = os.environ) -> int:
    """How many days of history are kept (``BEATKEEPER_HISTORY_DAYS``, default 30)."""
    raw = (environ.get("BEATKEEPER_HISTORY_DAYS") or "").strip()
    if not raw:
        return DEFAULT_HISTORY_DAYS
    try:
        days = int(raw)
    except ValueError:
        raise HistorySettingError("BEATKEEPER_HISTORY_DAYS", raw, "expected a whole number of days") from None
    if days <= 0:
        raise HistorySettingError("BEATKEEPER_HISTORY_DAYS", raw, "must be greater than 0")
    return days


def make_engine(url: str) -> Engine:
    """A new engine for ``url``; a SQLite file gets its directory created and WAL mode."""
    parsed = _with_installed_driver(make_url(url))
    if parsed.get_backend_name() != "sqlite":
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if parsed.get_backend_name() == "postgresql" else {}
        return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _with_installed_driver(url: URL) -> URL:
    # A bare postgresql:// means psycopg (3) to SQLAlchemy 2.1; beatkeeper's [postgres] extra
    # installs psycopg2, so use whichever of the two is installed.
    if url.drivername != "postgresql":
        return url
    for module, driver in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return url.set(drivername=driver)
    return url


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; safe with WAL
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def engine_for(url: str | None = None) -> Engine:
    """The process's shared engine for ``url`` (default: from the environment).

    Keyed by pid: a prefork child never reuses connections its parent opened.
    """
    url = url or database_url()
    key = (os.getpid(), url)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = make_engine(url)
        return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One real transaction, DDL included, committed on success and rolled back on error.

    SQLite takes its write lock up front (BEGIN IMMEDIATE): Python's sqlite3 module would
    otherwise start the transaction only before DML (a leading CREATE/DROP commits on its
    own), and a read-then-write would have to upgrade its lock, which fails at once instead
    of waiting while another writer is in.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
