"""The history questions the dashboard asks, each through the (entry, finished_at) index.

The overview needs each entry's latest few runs (last status, lateness, duration and the
small picture); the entry page one page of its history, filtered. Both stay cheap however
long the history grows: one indexed ``LIMIT`` query per entry, never a scan of the table.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Engine, bindparam, func, select

from monitoring.history import RunRecord
from monitoring.models import task_runs

#: Runs shown in an overview row's picture.
RECENT_RUNS = 12


def recent_runs_of(engine: Engine, entries: Iterable[str], *, limit: int = RECENT_RUNS) -> dict[str, list[RunRecord]]:
    """Each entry's latest ``limit`` runs (by finish), newest first; entries without runs are left out."""
    statement = (select(task_runs).where(task_runs.c.entry == bindparam("entry_name"))
                 .order_by(task_runs.c.finished_at.desc(), task_runs.c.id.desc()).limit(limit))
    found: dict[str, list[RunRecord]] = {}
    with engine.connect() as connection:
        for entry in sorted(set(entries)):
            rows = connection.execute(statement, {"entry_name": entry}).mappings().all()
            if rows:
                found[entry] = [RunRecord.from_row(row) for row in rows]
    return found


def entry_history(engine: Engine, entry: str, *, statuses: Iterable[str] = (), since: datetime | None = None,
                  until: datetime | None = None, offset: int = 0, limit: int = 50) -> tuple[list[dict], int]:
    """One page of ``entry``'s runs, newest first, as rows (with ``id``), and how many match in all."""
    where = [task_runs.c.entry == entry]
    statuses = list(statuses)
    if statuses:
        where.append(task_runs.c.status.in_(statuses))
    if since is not None:
        where.append(task_runs.c.finished_at >= since)
    if until is not None:
        where.append(task_runs.c.finished_at < until)
    page = (select(task_runs).where(*where).order_by(task_runs.c.finished_at.desc(), task_runs.c.id.desc())
            .offset(offset).limit(limit))
    with engine.connect() as connection:
        rows = [dict(row) for row in connection.execute(page).mappings()]
        total = int(connection.scalar(select(func.count()).select_from(task_runs).where(*where)) or 0)
    return rows, total


def runs_since_by_task(engine: Engine, tasks: Iterable[str], *, since: datetime) -> dict[str, int]:
    """Runs of each task finished since ``since`` (what its hourly budget counts)."""
    tasks = sorted(set(tasks))
    if not tasks:
        return {}
    statement = (select(task_runs.c.task_name, func.count())
                 .where(task_runs.c.task_name.in_(tasks), task_runs.c.finished_at >= since,
                        task_runs.c.status.in_(("success", "failure", "retry", "lost")))
                 .group_by(task_runs.c.task_name))
    with engine.connect() as connection:
        return {task: int(count) for task, count in connection.execute(statement)}
