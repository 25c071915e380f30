"""The transit example's own tables (SQLAlchemy Core): what the hourly jobs read and write.

``TRANSIT_DATABASE_URL`` (default: the GTFS database, ``sqlite:///<data dir>/gtfs/gtfs.db``);
Postgres works the same (``postgresql+psycopg2://``). Tables are created on first use.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table
from sqlalchemy.engine import Engine

from examples.database import example_database_url, example_engine

metadata = MetaData()

#: One row per GTFS-RT poll that fetched (not those the adaptive logic skipped).
rt_polls = Table(
    "transit_rt_polls", metadata,
    Column("id", Integer, primary_key=True),
    Column("polled_at", DateTime(timezone=True), nullable=False, index=True),
    Column("mode", String(16), nullable=False),  # "peak", "day" or "night"
)

#: Runs per task per hour, rolled up by ``transit.usage_rollup``.
usage_hourly = Table(
    "transit_usage_hourly", metadata,
    Column("hour", DateTime(timezone=True), primary_key=True),
    Column("polls", Integer, nullable=False),
)

#: One row per hourly cost check.
cost_checks = Table(
    "transit_cost_checks", metadata,
    Column("id", Integer, primary_key=True),
    Column("checked_at", DateTime(timezone=True), nullable=False),
    Column("projected_usd_per_month", Float, nullable=False),
    Column("budget_usd_per_month", Float, nullable=False),
)


def database_url(environ: Mapping[str, str] = os.environ) -> str:
    return example_database_url(environ, ("TRANSIT_DATABASE_URL", "GTFS_DATABASE_URL"), "gtfs/gtfs.db")


def engine_for(url: str) -> Engine:
    return example_engine(url, metadata)
