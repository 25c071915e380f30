"""The execution-history questions the monitor and ``beatkeeper status`` ask, in SQL.

Each is one query on ``monitoring.models.task_runs`` through an index
(entry + finished_at, task_id, the primary key), so an evaluation stays cheap however long
the history grows. Run identity asks one too (:func:`succeeded_task_id`). Instants go in and come out timezone-aware (UTC).
"""
from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from monitoring.history import RunRecord
from monitoring.models import task_runs
from monitoring.run_status import RunStatus

#: Statuses of runs whose body executed (``lost``: started, then its worker died).
RAN_STATUSES = (RunStatus.SUCCESS.value, RunStatus.FAILURE.value, RunStatus.LOST.value)


def instant_key(instant: datetime) -> int:
    """An instant as whole milliseconds since the epoch: fire instants compared across the
    ISO header, the database and the trigger without float or precision surprises."""
    return round(instant.timestamp() * 1000)


def statuses_by_fire_instant(engine: Engine, *, entry: str, start: datetime, end: datetime) -> dict[int, set[str]]:
    """Statuses of the rows of ``entry`` whose fire instant is in ``[start, end)``, keyed by ``instant_key``."""
    statement = (select(task_runs.c.fire_at, task_runs.c.status)
                 .where(task_runs.c.entry == entry, task_runs.c.fire_at >= start, task_runs.c.fire_at < end))
    found: dict[int, set[str]] = {}
    with engine.connect() as connection:
        for fire_at, status in connection.execute(statement):
            found.setdefault(instant_key(fire_at), set()).add(status)
    return found


def succeeded_task_id(engine: Engine, *, entry: str, fire_at: datetime) -> str | None:
    """The task id of a successful run of ``entry`` for the instant ``fire_at``; None when there is none.
    (A run finishes after its instant: the entry + finished_at index narrows it to the rows since.)"""
    slack = timedelta(milliseconds=1)
    statement = (select(task_runs.c.task_id)
                 .where(task_runs.c.entry == entry, task_runs.c.finished_at >= fire_at - slack,
                        task_runs.c.fire_at >= fire_at - slack, task_runs.c.fire_at <= fire_at + slack,
                        task_runs.c.status == "success")
                 .limit(1))
    with engine.connect() as connection:
        return connection.scalar(statement)


def latest_row_id(engine: Engine) -> int:
    """The id of the newest row (0 for an empty history)."""
    with engine.connect() as connection:
        return int(connection.scalar(select(func.max(task_runs.c.id))) or 0)


def rows_after(engine: Engine, *, after_id: int, statuses: Collection[str], limit: int = 500
               ) -> list[tuple[int, RunRecord]]:
    """Rows with an id above ``after_id`` and one of ``statuses``, oldest first, as (id, record).

    Ids grow in commit order: the spool is drained by one holder of its lock at a time.
    """
    statement = (select(task_runs).where(task_runs.c.id > after_id, task_runs.c.status.in_(list(statuses)))
                 .order_by(task_runs.c.id).limit(limit))
    with engine.connect() as connection:
        return [(int(row["id"]), RunRecord.from_row(row)) for row in connection.execute(statement).mappings()]


def subject_of(record: RunRecord) -> str:
    """What a run's alerts are about: its schedule entry, or its task when triggered by hand."""
    return record.entry or record.task_name


def last_success_at(engine: Engine, subjects: Iterable[str]) -> dict[str, datetime]:
    """The finish instant of each subject's latest success (entry, or task name of hand runs)."""
    subjects = sorted(set(subjects))
    if not subjects:
        return {}
    by_entry = (select(task_runs.c.entry, func.max(task_runs.c.finished_at))
                .where(task_runs.c.status == "success", task_runs.c.entry.in_(subjects))
                .group_by(task_runs.c.entry))
    by_task = (select(task_runs.c.task_name, func.max(task_runs.c.finished_at))
               .where(task_runs.c.status == "success", task_runs.c.entry == "", task_runs.c.task_name.in_(subjects))
               .group_by(task_runs.c.task_name))
    found: dict[str, datetime] = {}
    with engine.connect() as connection:
        for statement in (by_entry, by_task):
            for subject, finished_at in connection.execute(statement):  # max() keeps the UTC type
                if subject not in found or finished_at > found[subject]:
                    found[subject] = finished_at
    return found


def recent_ran_statuses(engine: Engine, *, entry: str, limit: int) -> list[str]:
    """The statuses of ``entry``'s latest ``limit`` runs whose body executed, newest first."""
    statement = (select(task_runs.c.status)
                 .where(task_runs.c.entry == entry, task_runs.c.status.in_(RAN_STATUSES))
                 .order_by(task_runs.c.finished_at.desc(), task_runs.c.id.desc()).limit(limit))
    with engine.connect() as connection:
        return list(connection.scalars(statement))


def finished_task_ids(engine: Engine, task_ids: Iterable[str]) -> set[str]:
    """Which of ``task_ids`` have a row whose run ended (retries aside)."""
    task_ids = sorted(set(task_ids))
    if not task_ids:
        return set()
    statement = (select(task_runs.c.task_id).where(task_runs.c.task_id.in_(task_ids), task_runs.c.status != "retry")
                 .distinct())
    with engine.connect() as connection:
        return set(connection.scalars(statement))


def last_run_of(engine: Engine, entries: Iterable[str]) -> dict[str, RunRecord]:
    """Each entry's latest row (by finish), whatever its status."""
    found: dict[str, RunRecord] = {}
    with engine.connect() as connection:
        for entry in sorted(set(entries)):
            statement = (select(task_runs).where(task_runs.c.entry == entry)
                         .order_by(task_runs.c.finished_at.desc(), task_runs.c.id.desc()).limit(1))
            row = connection.execute(statement).mappings().first()
            if row is not None:
                found[entry] = RunRecord.from_row(row)
    return found
