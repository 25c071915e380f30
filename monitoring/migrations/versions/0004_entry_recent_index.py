"""The (entry, finished_at) index becomes (entry, finished_at, id, status, lateness_s): it still
serves an entry's history by finish, and holds everything the dashboard's strip of each entry's
latest runs reads, so that read never visits the table (one seek per entry).

Revision ID: 0003_entry_recent_index
Revises: 0002_pipelines
"""
from __future__ import annotations

from alembic import op

revision = "0004_entry_recent_index"
down_revision = "0003_database_identity"
branch_labels = None
depends_on = None

_TABLE = "beatkeeper_task_runs"


def upgrade() -> None:
    op.create_index("ix_beatkeeper_task_runs_entry_recent", _TABLE,
                    ["entry", "finished_at", "id", "status", "lateness_s"])
    op.drop_index("ix_beatkeeper_task_runs_entry_finished", table_name=_TABLE)


def downgrade() -> None:
    op.create_index("ix_beatkeeper_task_runs_entry_finished", _TABLE, ["entry", "finished_at"])
    op.drop_index("ix_beatkeeper_task_runs_entry_recent", table_name=_TABLE)
