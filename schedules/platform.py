"""The platform's own schedule, as data, plus the user's schedule file when one is named.

``BEATKEEPER_SCHEDULE=/path/to/schedule.yaml`` adds the user's entries (any format
``schedules.loader`` reads) to the platform's. A name used by both is an error.
"""
from __future__ import annotations

from collections.abc import Mapping
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
#: Names a user's schedule file may not use (``schedules.loader`` refuses them, for check and beat alike).
RESERVED_NAMES = frozenset(SCHEDULE) | {GTFS_PIPELINE_ENTRY, PIPELINE_RESUME_ENTRY}


def platform_schedule(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The platform's own entries in this environment: the GTFS pipeline, and the resume of stalled
    pipeline runs, only once ``GTFS_STATIC_URL`` names a feed."""
    entries = dict(SCHEDULE)
    if environ.get(GTFS_FEED_ENV, "").strip():
        entries[GTFS_PIPELINE_ENTRY] = dict(GTFS_PIPELINE)
        entries[PIPELINE_RESUME_ENTRY] = dict(PIPELINE_RESUME)
    return entries


def effective_schedule(environ: Mapping[str, str]) -> dict[str, Any]:
    """The platform's entries plus those of the file named by ``BEATKEEPER_SCHEDULE``, if any
    (the loader refuses a file using one of the platform's names)."""
    from schedules.loader import load_schedule_file

    platform = platform_schedule(environ)
    path = environ.get(SCHEDULE_FILE_ENV, "").strip()
    if not path:
        return platform
    return {**platform, **load_schedule_file(path)}
