"""The execution history's tables (SQLAlchemy 2 Core). Alembic migrations create and change them.

One row per run attempt. ``record_id`` is the attempt's unique key, chosen when the record
is made: writing the same record twice (a drain retried after a crash) adds nothing.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (BigInteger, Column, DateTime, Float, Index, Integer, MetaData, String, Table, Text,
                        TypeDecorator, UniqueConstraint)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; Postgres gets a 64-bit identity.
_row_id_type = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone: store naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: history instants must be timezone-aware")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


task_runs = Table(
    "beatkeeper_task_runs",
    metadata,
    Column("id", _row_id_type, primary_key=True, autoincrement=True),
    Column("record_id", String(64), nullable=False),
    Column("task_name", String(255), nullable=False),
    Column("entry", String(255), nullable=False, default=""),  # '' for a hand-triggered run
    Column("task_id", String(255), nullable=False),
    Column("attempt", Integer, nullable=False, default=0),  # Celery's retries count: 0 for the first
    Column("status", String(32), nullable=False),
    Column("fire_at", UtcDateTime, nullable=True),  # the scheduled instant; None when triggered by hand
    Column("received_at", UtcDateTime, nullable=True),
    Column("started_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=False),
    Column("lateness_s", Float, nullable=True),  # started minus scheduled fire instant
    Column("duration_s", Float, nullable=True),  # finished minus started, for runs that executed
    Column("error_type", String(255), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("reason", Text, nullable=True),  # why a run was skipped, expired or lost
    Column("hostname", String(255), nullable=False, default=""),
    Column("fencing_token", BigInteger, nullable=True),
    Column("pipeline_run_id", String(64), nullable=True),
    UniqueConstraint("record_id", name="uq_beatkeeper_task_runs_record_id"),
    Index("ix_beatkeeper_task_runs_finished_at", "finished_at"),
    Index("ix_beatkeeper_task_runs_task_finished", "task_name", "finished_at"),
    # an entry's history by finish, and (holding all they need) the dashboard's strips of its latest runs
    Index("ix_beatkeeper_task_runs_entry_recent", "entry", "finished_at", "id", "status", "lateness_s"),
    Index("ix_beatkeeper_task_runs_task_id", "task_id"),
)
