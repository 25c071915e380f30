"""The database's own identity: one row with a random id, made when the schema is created, so
the history spool drains into one database only (``monitoring.history_home``).

Revision ID: 0003_database_identity
Revises: 0002_pipelines
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0003_database_identity"
down_revision = "0002_pipelines"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "beatkeeper_database",
        sa.Column("database_id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    # naive UTC, as the models' UtcDateTime stores it on SQLite (Postgres keeps the zone)
    created = datetime.now(timezone.utc)
    if op.get_bind().dialect.name == "sqlite":
        created = created.replace(tzinfo=None)
    op.bulk_insert(table, [{"database_id": uuid.uuid4().hex, "created_at": created}])


def downgrade() -> None:
    op.drop_table("beatkeeper_database")
