"""The history questions the dashboard asks, each through the (entry, finished_at...) index.

The overview needs each entry's latest few runs (last status, lateness, duration and the
small picture); the entry page one page of its history, filtered. Both stay cheap however
long the history grows: index seeks per entry, never a scan of the table.
"""
from __future__ import annotations

import json
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

    Two statements whatever the number of entries (a Postgres across the network would otherwise
    pay a round trip per entry): every entry's strip, each entry's latest ``limit`` rows found by
    one seek of the (entry, finished_at, id, status, lateness_s) index, which holds all the strip
    needs; then the full row of each entry's latest run, by id. On the driver's own cursor: at
    1,000 entries SQLAlchemy's row and type processing would cost more than the queries.
    """
    names = sorted(set(entries))
    if not names:
        return {}
    postgres = engine.dialect.name == "postgresql"
    strips: dict[str, list[tuple[str, float | None]]] = {}
    latest: list[int] = []  # the id of each entry's latest run: the first of its rows
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(_STRIPS_SQL["postgresql" if postgres else "sqlite"].format(table=task_runs.name,
                                                                                  limit=int(limit)),
                       (names if postgres else json.dumps(names),))
        for entry, run_id, status, lateness_s in cursor.fetchall():
            strip = strips.get(entry)
            if strip is None:
                strip = strips[entry] = []
                latest.append(run_id)
            strip.append((status, lateness_s))
        cursor.execute(f"SELECT {', '.join(_COLUMNS)} FROM {task_runs.name} WHERE id "
                       + ("= ANY(%s)" if postgres else "IN (SELECT value FROM json_each(?))"),
                       (latest if postgres else json.dumps(latest),))
        last = {row[_ENTRY_AT]: _record(row) for row in cursor.fetchall()}
        cursor.close()
    finally:
        connection.close()
    return {entry: RecentRuns(last[entry], strip) for entry, strip in strips.items() if entry in last}


# Each entry's latest runs, newest first, in one statement: Postgres joins each name to a LIMIT
# subquery (LATERAL); SQLite, which has no LATERAL, picks the rows whose id that subquery lists.
_STRIPS_SQL = {
    "postgresql": "SELECT e.entry, r.id, r.status, r.lateness_s FROM unnest(%s::text[]) AS e(entry) "
                  "CROSS JOIN LATERAL (SELECT id, status, lateness_s, finished_at FROM {table} "
                  "WHERE entry = e.entry ORDER BY finished_at DESC, id DESC LIMIT {limit}) AS r "
                  "ORDER BY e.entry, r.finished_at DESC, r.id DESC",
    "sqlite": "SELECT e.value, r.id, r.status, r.lateness_s FROM json_each(?) AS e JOIN {table} AS r "
              "ON r.id IN (SELECT id FROM {table} WHERE entry = e.value ORDER BY finished_at DESC, id DESC "
              "LIMIT {limit}) ORDER BY e.value, r.finished_at DESC, r.id DESC",
}

_COLUMNS = ("task_name", "task_id", "status", "finished_at", "entry", "attempt", "fire_at", "received_at",
            "started_at", "error_type", "error_message", "reason", "hostname", "fencing_token", "pipeline_run_id",
            "record_id")
_INSTANTS = {i for i, name in enumerate(_COLUMNS) if name.endswith("_at")}
_ENTRY_AT = _COLUMNS.index("entry")


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
