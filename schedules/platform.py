"""The platform's own schedule, as data, plus the user's schedule file when one is named.

The user's file is ``schedules/user.yaml`` (or ``.yml``/``.json``/``.toml``/``.py``), found without
any variable; ``BEATKEEPER_SCHEDULE=/path/to/schedule.yaml`` names another instead (any format
``schedules.loader`` reads). Its entries are added to the platform's; a name used by both is an error.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Entries every beatkeeper deployment runs.
SCHEDULE: dict[str, dict[str, Any]] = {
    "beatkeeper-heartbeat": {
        "task": "beatkeeper.heartbeat",
        "every": 60,
        "expires": 55,
        "overlap": "allow",
        "description": "proves beat -> broker -> worker is alive (the monitor alerts past 3 min)",
    },
    "beatkeeper-purge-history": {
        "task": "beatkeeper.purge_history",
        "cron": "17 3 * * *",
        "overlap": "skip",
        "lock_key": [],
        "expires": 3600,
        "description": "deletes history rows older than BEATKEEPER_HISTORY_DAYS (default 30), in batches",
    },
}

#: The GTFS static reference pipeline (``tasks.gtfs_tasks``): included once ``GTFS_STATIC_URL``
#: names a feed. Its start task returns at once; ``overlap: skip`` there plus the start task's
#: refusal while a run is still going keep one run at a time; a start older than 2 h is dropped.
GTFS_PIPELINE_ENTRY = "gtfs-static-pipeline"
GTFS_FEED_ENV = "GTFS_STATIC_URL"
GTFS_PIPELINE: dict[str, Any] = {
    "task": "beatkeeper.gtfs.start",
    "cron": "0 3 * * *",
    "timezone": "Australia/Sydney",
    "overlap": "skip",
    "expires": "2h",
    "description": "GTFS static pipeline: sync -> refresh -> export -> publish, each step after the last finished",
}

#: The automatic resume of pipeline runs stalled past their step's max_runtime (a worker died
#: between two steps), at most 3 times a run; runs with it whenever a pipeline is configured.
PIPELINE_RESUME_ENTRY = "beatkeeper-pipeline-resume-stalled"
PIPELINE_RESUME: dict[str, Any] = {
    "task": "beatkeeper.pipeline.resume_stalled",
    "every": 300,
    "expires": 240,
    "overlap": "skip",
    "lock_key": [],
    "description": "resumes pipeline runs stalled past their step's max_runtime (at most 3 times a run)",
}

SCHEDULE_FILE_ENV = "BEATKEEPER_SCHEDULE"
#: The user's schedule file, found without any variable: ``schedules/user.yaml`` (or ``.yml``,
#: ``.json``, ``.toml``, ``.py``), so make run, the image and compose carry it. The variable overrides.
USER_SCHEDULE_HOME = Path(__file__).resolve().parent
USER_SCHEDULE_NAMES = ("user.yaml", "user.yml", "user.json", "user.toml", "user.py")


def user_schedule_path(home: Path = USER_SCHEDULE_HOME) -> str:
    """The user's schedule file in ``home``, or '' when there is none; two of them are ambiguous."""
    from schedules.errors import ConfigFileError

    found = [home / name for name in USER_SCHEDULE_NAMES if (home / name).is_file()]
    if len(found) > 1:
        raise ConfigFileError(str(found[0]), f"more than one user schedule file ({', '.join(p.name for p in found)}): keep one")
    return str(found[0]) if found else ""


def platform_schedule(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The platform's own entries in this environment: the GTFS pipeline, and the resume of stalled
    pipeline runs, only once ``GTFS_STATIC_URL`` names a feed."""
    entries = dict(SCHEDULE)
    if environ.get(GTFS_FEED_ENV, "").strip():
        entries[GTFS_PIPELINE_ENTRY] = dict(GTFS_PIPELINE)
        entries[PIPELINE_RESUME_ENTRY] = dict(PIPELINE_RESUME)
    return entries


def effective_schedule(environ: Mapping[str, str]) -> dict[str, Any]:
    """The platform's entries plus those of the file named by ``BEATKEEPER_SCHEDULE``, else of the
    user's schedule file (``schedules/user.yaml``), if any."""
    from schedules.errors import ConfigFileError
    from schedules.loader import load_schedule_file

    platform = platform_schedule(environ)
    path = environ.get(SCHEDULE_FILE_ENV, "").strip() or user_schedule_path()
    if not path:
        return platform
    user = load_schedule_file(path)
    clashes = sorted(set(user) & (set(SCHEDULE) | {GTFS_PIPELINE_ENTRY, PIPELINE_RESUME_ENTRY}))
    if clashes:
        raise ConfigFileError(path, f"entry names {clashes} are reserved by the platform's own schedule")
    return {**platform, **user}
