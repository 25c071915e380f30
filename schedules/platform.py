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
}

SCHEDULE_FILE_ENV = "BEATKEEPER_SCHEDULE"


def effective_schedule(environ: Mapping[str, str]) -> dict[str, Any]:
    """The platform's entries plus those of the file named by ``BEATKEEPER_SCHEDULE``, if any."""
    from schedules.errors import ConfigFileError
    from schedules.loader import load_schedule_file

    path = environ.get(SCHEDULE_FILE_ENV, "").strip()
    if not path:
        return dict(SCHEDULE)
    user = load_schedule_file(path)
    clashes = sorted(set(user) & set(SCHEDULE))
    if clashes:
        raise ConfigFileError(path, f"entry names {clashes} are reserved by the platform's own schedule")
    return {**SCHEDULE, **user}
