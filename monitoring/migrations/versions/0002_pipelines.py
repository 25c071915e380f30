"""Pipeline runs and their step completions.

Revision ID: 0002_pipelines
Revises: 0001_task_runs
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_pipelines"
down_revision = "0001_task_runs"
branch_labels = None
depends_on = None

_instant = sa.DateTime(timezone=True)
_running = sa.text("status = 'running'")


def upgrade() -> None:
    op.create_table(
        "beatkeeper_pipeline_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("pipeline", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("entry", sa.String(255), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("steps", sa.Text, nullable=False),
        sa.Column("created_at", _instant, nullable=False),
        sa.Column("updated_at", _instant, nullable=False),
        sa.Column("deadline_at", _instant, nullable=True),
        sa.Column("finished_at", _instant, nullable=True),
        sa.Column("current_step", sa.String(64), nullable=True),
        sa.Column("failed_step", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("resumes", sa.Integer, nullable=False),
    )
    op.create_index("ix_beatkeeper_pipeline_runs_pipeline_created", "beatkeeper_pipeline_runs",
                    ["pipeline", "created_at"])
    op.create_index("ux_beatkeeper_pipeline_runs_one_running", "beatkeeper_pipeline_runs", ["pipeline"],
                    unique=True, sqlite_where=_running, postgresql_where=_running)
    op.create_table(
        "beatkeeper_pipeline_steps",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("step", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("started_at", _instant, nullable=False),
        sa.Column("finished_at", _instant, nullable=True),
        sa.Column("checksum", sa.String(128), nullable=True),
        sa.Column("output", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("beatkeeper_pipeline_steps")
    op.drop_index("ux_beatkeeper_pipeline_runs_one_running", table_name="beatkeeper_pipeline_runs")
    op.drop_table("beatkeeper_pipeline_runs")
