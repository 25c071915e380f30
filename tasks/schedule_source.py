"""Where beat and the CLI get the schedule: the platform's entries plus the user's file,
validated against the tasks this app registers, with the settings from the environment.

Both go through :func:`load_validated_schedule`, so ``beatkeeper check`` and a starting
beat report exactly the same problems.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone

from schedules.platform import effective_schedule
from schedules.settings import ScheduleSettings
from schedules.validate import ValidatedSchedule, validate_schedule


def registered_task_names(app) -> set[str]:
    """Every task name the app registers (its own modules and ``BEATKEEPER_TASK_MODULES``)."""
    app.loader.import_default_modules()
    return set(app.tasks)


def load_validated_schedule(app, *, environ: Mapping[str, str] = os.environ,
                            raw: Mapping | None = None, now: datetime | None = None) -> ValidatedSchedule:
    """Validate ``raw`` (default: the effective schedule from ``environ``).

    Raises ``ScheduleConfigError`` (every problem) or ``ConfigFileError`` / ``SettingsError``.
    """
    settings = ScheduleSettings.from_env(environ)
    schedule = effective_schedule(environ) if raw is None else raw
    return validate_schedule(schedule, settings=settings, registered_tasks=registered_task_names(app),
                             now=now or datetime.now(timezone.utc))
