"""The booking example's tables (SQLAlchemy Core). ``BOOKING_DATABASE_URL`` (default
``sqlite:///<data dir>/booking.db``; Postgres: ``postgresql+psycopg2://...``, where rows are
claimed with ``SELECT ... FOR UPDATE SKIP LOCKED``)."""
from __future__ import annotations

import os
from collections.abc import Mapping

from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table
from sqlalchemy.engine import Engine

from examples.database import example_database_url, example_engine

metadata = MetaData()

bookings = Table(
    "booking", metadata,
    Column("id", Integer, primary_key=True),
    Column("status", String(16), nullable=False),  # REQUESTED SCHEDULED ACTIVE ENDED EXPIRED CANCELLED
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False, default=0),  # +1 on every change: a lost update shows
    Index("booking_status_starts", "status", "starts_at"),
)

#: Every state change, by whom: the sweeps' jobs or the API.
transitions = Table(
    "booking_transition", metadata,
    Column("id", Integer, primary_key=True),
    Column("booking_id", Integer, ForeignKey("booking.id"), nullable=False, index=True),
    Column("from_status", String(16), nullable=False),
    Column("to_status", String(16), nullable=False),
    Column("actor", String(40), nullable=False),
    Column("version", Integer, nullable=False),  # the row's version after the change
)


def database_url(environ: Mapping[str, str] = os.environ) -> str:
    return example_database_url(environ, ("BOOKING_DATABASE_URL",), "booking.db")


def engine_for(url: str) -> Engine:
    return example_engine(url, metadata, pool_size=10)
