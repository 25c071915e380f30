"""The platform's own schedule, as data, plus the user's schedule file when one is named.

``BEATKEEPER_EXAMPLE=<name>`` adds an example's entries (``schedules.examples``) and the user's
file adds its own: ``schedules/user.yaml`` (or ``.yml``/``.json``/``.toml``/``.py``), found without
any variable; ``BEATKEEPER_SCHEDULE=/path/to/schedule.yaml`` names another instead (any format
``schedules.loader`` reads). A name used twice is an error.
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

SCHEDULE_FILE_ENV = "BEATKEEPER_SCHEDULE"
#: Names a user's schedule file may not use (``schedules.loader`` refuses them, for check and beat alike).
RESERVED_NAMES = frozenset(SCHEDULE)
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
    """The platform's own entries (the same in every environment; examples bring their own)."""
    return {name: dict(entry) for name, entry in SCHEDULE.items()}


def effective_schedule(environ: Mapping[str, str]) -> dict[str, Any]:
    """The platform's entries plus those of the selected example (``BEATKEEPER_EXAMPLE``) and of
    the file named by ``BEATKEEPER_SCHEDULE``, else of the user's schedule file
    (``schedules/user.yaml``), if any. A name used twice is an error (the loader refuses the
    platform's own names; the example's are refused here)."""
    from schedules.errors import ConfigFileError
    from schedules.examples import example_schedule_path, selected_example
    from schedules.loader import load_schedule_file

    merged = platform_schedule(environ)
    example = selected_example(environ)
    paths = [str(example_schedule_path(example))] if example else []
    paths += [p for p in [environ.get(SCHEDULE_FILE_ENV, "").strip() or user_schedule_path()] if p]
    for path in paths:
        more = load_schedule_file(path)
        clashes = sorted(set(more) & set(merged))
        if clashes:
            owner = "the platform's own schedule" if set(clashes) & set(SCHEDULE) else "the example's schedule"
            raise ConfigFileError(path, f"entry names {clashes} are reserved by {owner}")
        merged.update(more)
    return merged
