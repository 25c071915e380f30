"""One history: the spool drains into the deployment's one database, never into a stranger.

Every process that drains the Redis spool (the workers' drainers, the monitor) writes into its own
``DATABASE_URL``. With workers on two hosts and the default SQLite, each host would keep part of
the history in its own file (issue 17). So the first drainer records which database the spool
belongs to, and a process whose database is another one does not drain: it says why in its log
and in the monitor's ``/readyz``, and its records wait in the spool for a drainer that may.

How a database is known: by an id stored *in* it (``beatkeeper_database``, one row with a random
id, made by the schema migration), not by its URL: two hosts' default SQLite files have the same
URL and are two databases, while one Postgres reached under two host names is one. The Redis key
(:func:`home_key`, beside the spool) holds that id with the URL without its password, the
recording host and the instant, as JSON; it never expires. A deployment that moved its history to
another database deletes the key: the next drainer records the new one.
"""
from __future__ import annotations

import json
import socket
from datetime import datetime, timezone

import redis
from sqlalchemy import Column, Engine, String, Table, select

from monitoring.models import UtcDateTime, metadata

HOME_SUFFIX = ":database"  # beside the spool: beatkeeper:history:spool:database

database_identity_table = Table(
    "beatkeeper_database",
    metadata,
    Column("database_id", String(32), primary_key=True),  # random, made with the schema
    Column("created_at", UtcDateTime, nullable=False),
)


def home_key(spool_key: str) -> str:
    return spool_key + HOME_SUFFIX


def database_id(engine: Engine) -> str:
    """The id the database keeps of itself (raises SQLAlchemyError when it has none: not migrated)."""
    with engine.connect() as connection:
        found = connection.scalar(select(database_identity_table.c.database_id).limit(1))
    if found is None:
        raise LookupError("the history database has no identity row (run `beatkeeper db upgrade`)")
    return str(found)


def safe_url(engine: Engine) -> str:
    """The database URL without its password."""
    return engine.url.render_as_string(hide_password=True)


class HistoryHome:
    """Which database the spool drains into: recorded by the first drainer, checked by every one."""

    def __init__(self, spool_key: str):
        self.key = home_key(spool_key)
        self._own_id: str | None = None  # the database's id never changes: read once

    def refusal(self, engine: Engine, client: redis.Redis) -> str | None:
        """None when ``engine``'s database is the deployment's (recording it when none is yet); else why not."""
        if self._own_id is None:
            self._own_id = database_id(engine)
        mine = {"database_id": self._own_id, "url": safe_url(engine), "host": socket.gethostname(),
                "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        client.set(self.key, json.dumps(mine, sort_keys=True), nx=True)
        raw = client.get(self.key)
        home = json.loads(raw) if raw else mine
        if home.get("database_id") == self._own_id:
            return None
        return (f"DATABASE_URL ({mine['url']}, database {self._own_id}) is not this deployment's history "
                f"database ({home.get('url')}, database {home.get('database_id')}, recorded by "
                f"{home.get('host')} at {home.get('since')}): this process does not drain the spool; point "
                f"DATABASE_URL at that database, or, if the history moved here, delete the Redis key {self.key}")
