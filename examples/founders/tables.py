"""The Founders example's tables (SQLAlchemy Core). ``FOUNDERS_DATABASE_URL`` (default
``sqlite:///<data dir>/founders.db``; Postgres: ``postgresql+psycopg2://...``)."""
from __future__ import annotations

import os
from collections.abc import Mapping

from sqlalchemy import (Column, Date, DateTime, ForeignKey, Integer, MetaData, PrimaryKeyConstraint, String, Table)
from sqlalchemy.engine import Engine

from examples.database import example_database_url, example_engine

metadata = MetaData()

#: One founder's pricing lock: ``active`` until ``lock_expires_on``, then ``grace``, then ``lapsed``.
subscriptions = Table(
    "founder_subscription", metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(200), nullable=False),
    Column("lock_expires_on", Date, nullable=False),
    Column("status", String(16), nullable=False, default="active"),
    Column("status_since", Date, nullable=True),  # the day the status became true (not when a sweep saw it)
)

#: Each warning sent, at most once per subscription and lead time (the primary key says so).
warnings = Table(
    "founder_warning", metadata,
    Column("subscription_id", Integer, ForeignKey("founder_subscription.id"), nullable=False),
    Column("days_before", Integer, nullable=False),  # 30, 14, 7 or 1
    Column("due_on", Date, nullable=False),
    Column("sent_on", Date, nullable=False),
    PrimaryKeyConstraint("subscription_id", "days_before"),
)

#: Every sweep run and what it did: ``swept``, ``flag_off`` (exited at once) or ``locked`` (another ran).
sweep_runs = Table(
    "founder_sweep_run", metadata,
    Column("id", Integer, primary_key=True),
    Column("as_of", Date, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("warnings_sent", Integer, nullable=False, default=0),
    Column("transitions", Integer, nullable=False, default=0),
)


def database_url(environ: Mapping[str, str] = os.environ) -> str:
    return example_database_url(environ, ("FOUNDERS_DATABASE_URL",), "founders.db")


def engine_for(url: str) -> Engine:
    return example_engine(url, metadata)
