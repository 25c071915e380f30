"""The gift-exchange example's tables (SQLAlchemy Core). ``GIFT_DATABASE_URL`` (default
``sqlite:///<data dir>/gift_exchange.db``; Postgres: ``postgresql+psycopg2://...``).

Instants are stored in UTC; SQLite gives them back naive, so readers pass them through ``as_utc``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone

from sqlalchemy import (Boolean, Column, DateTime, ForeignKey, Integer, MetaData, PrimaryKeyConstraint, String, Table)
from sqlalchemy.engine import Engine

from examples.database import example_database_url, example_engine

metadata = MetaData()

#: One exchange: ``open`` until matched, then ``matched`` (reminders scheduled), then ``completed``
#: (auto-complete, once ``exchange_at`` has passed) or ``cancelled``.
exchanges = Table(
    "gift_exchange", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("state", String(16), nullable=False, default="open"),
    Column("exchange_at", DateTime(timezone=True), nullable=False),  # the exchange itself (UTC)
    Column("timezone", String(64), nullable=False),  # the exchange's own zone: reminders at its local hours
    Column("reminder_days", String(64), nullable=False, default="7,3,1"),  # days before, admin configurable
    Column("admin_email", String(200), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("purge_warned_at", DateTime(timezone=True), nullable=True),  # the admin's warning, sent once
)

participants = Table(
    "gift_participant", metadata,
    Column("id", Integer, primary_key=True),
    Column("exchange_id", Integer, ForeignKey("gift_exchange.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("email", String(200), nullable=False),
    Column("reminder_enabled", Boolean, nullable=False, default=True),
    Column("withdrawn_at", DateTime(timezone=True), nullable=True),
)

#: Each reminder sent: at most once per participant, lead time and exchange date (the primary key),
#: however often its task runs (a redelivery, a retry after a failed send).
reminders_sent = Table(
    "gift_reminder_sent", metadata,
    Column("participant_id", Integer, ForeignKey("gift_participant.id"), nullable=False),
    Column("days_before", Integer, nullable=False),
    Column("exchange_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("participant_id", "days_before", "exchange_at"),
)

magic_tokens = Table(
    "gift_magic_token", metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(200), nullable=False),
    Column("token_hash", String(128), nullable=False, unique=True),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("used_at", DateTime(timezone=True), nullable=True),
)

sessions = Table(
    "gift_session", metadata,
    Column("id", String(64), primary_key=True),
    Column("email", String(200), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

rate_limits = Table(
    "gift_rate_limit", metadata,
    Column("key", String(200), primary_key=True),
    Column("hits", Integer, nullable=False, default=0),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)


def as_utc(value: datetime | None) -> datetime | None:
    """An aware UTC datetime (SQLite returns what it stored, naive UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def database_url(environ: Mapping[str, str] = os.environ) -> str:
    return example_database_url(environ, ("GIFT_DATABASE_URL",), "gift_exchange.db")


def engine_for(url: str) -> Engine:
    return example_engine(url, metadata)
