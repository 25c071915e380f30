"""The execution history: one row per run attempt.

Revision ID: 0001_task_runs
Revises:
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_task_runs"
down_revision = None
branch_labels = None
depends_on = None

_row_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_instant = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "beatkeeper_task_runs",
        sa.Column("id", _row_id, primary_key=True, autoincrement=True),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("task_name", sa.String(255), nullable=False),
        sa.Column("entry", sa.String(255), nullable=False),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("fire_at", _instant, nullable=True),
        sa.Column("received_at", _instant, nullable=True),
        sa.Column("started_at", _instant, nullable=True),
        sa.Column("finished_at", _instant, nullable=False),
        sa.Column("lateness_s", sa.Float, nullable=True),
        sa.Column("duration_s", sa.Float, nullable=True),
        sa.Column("error_type", sa.String(255), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("fencing_token", sa.BigInteger, nullable=True),
        sa.Column("pipeline_run_id", sa.String(64), nullable=True),
        sa.UniqueConstraint("record_id", name="uq_beatkeeper_task_runs_record_id"),
    )
    op.create_index("ix_beatkeeper_task_runs_finished_at", "beatkeeper_task_runs", ["finished_at"])
    op.create_index("ix_beatkeeper_task_runs_task_finished", "beatkeeper_task_runs", ["task_name", "finished_at"])
    op.create_index("ix_beatkeeper_task_runs_entry_finished", "beatkeeper_task_runs", ["entry", "finished_at"])
    op.create_index("ix_beatkeeper_task_runs_task_id", "beatkeeper_task_runs", ["task_id"])


def downgrade() -> None:
    op.drop_table("beatkeeper_task_runs")
