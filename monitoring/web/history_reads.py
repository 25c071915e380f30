"""The history questions the dashboard asks, each through the (entry, finished_at) index.

The overview needs each entry's latest few runs (last status, lateness, duration and the
small picture); the entry page one page of its history, filtered. Both stay cheap however
long the history grows: one indexed ``LIMIT`` query per entry, never a scan of the table.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine, func, select

from monitoring.history import RunRecord
from monitoring.models import task_runs

#: Runs shown in an overview row's picture.
RECENT_RUNS = 10


@dataclass(frozen=True)
class RecentRuns:
    """An entry's latest run in full, and (status, lateness_s) of its latest runs, newest first."""

    last: RunRecord
    strip: list[tuple[str, float | None]]


def recent_runs_of(engine: Engine, entries: Iterable[str], *, limit: int = RECENT_RUNS) -> dict[str, RecentRuns]:
    """Each entry's latest ``limit`` runs (by finish); entries without runs are left out.

    One indexed ``LIMIT`` query per entry on the driver's own cursor: at 1,000 entries SQLAlchemy's
    per-execution work (and its row and type processing) cost ten times the queries themselves;
    only the latest row is made a record, the others give their status and stored lateness.
    """
    mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    sql = (f"SELECT {', '.join(_COLUMNS)}, lateness_s FROM {task_runs.name} WHERE entry = {mark} "
           f"ORDER BY finished_at DESC, id DESC LIMIT {int(limit)}")
    status_at, lateness_at = _COLUMNS.index("status"), len(_COLUMNS)
    found: dict[str, RecentRuns] = {}
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        for entry in sorted(set(entries)):
            cursor.execute(sql, (entry,))
            rows = cursor.fetchall()
            if rows:
                found[entry] = RecentRuns(_record(rows[0][:lateness_at]),
                                          [(row[status_at], row[lateness_at]) for row in rows])
        cursor.close()
    finally:
        connection.close()
    return found


_COLUMNS = ("task_name", "task_id", "status", "finished_at", "entry", "attempt", "fire_at", "received_at",
            "started_at", "error_type", "error_message", "reason", "hostname", "fencing_token", "pipeline_run_id",
            "record_id")
_INSTANTS = {i for i, name in enumerate(_COLUMNS) if name.endswith("_at")}


def _record(row: tuple) -> RunRecord:
    values = [_utc(v) if i in _INSTANTS else v for i, v in enumerate(row)]
    return RunRecord(**dict(zip(_COLUMNS, values)))


def _utc(value: datetime | str | None) -> datetime | None:
    """An instant as the driver returns it (SQLite: naive UTC text) made aware, as ``UtcDateTime`` does."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


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
