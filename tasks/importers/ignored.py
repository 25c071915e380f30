"""Beat runs the validated schedule only: a Celery ``app.conf.beat_schedule`` entry is
ignored, and said so by name, with the command that imports it."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from tasks.beat.trigger_schedule import TriggerSchedule


def ignored_entries(beat_schedule: Mapping[str, Any] | None) -> list[str]:
    """The entries of ``beat_schedule`` beat did not put there itself (those run a TriggerSchedule)."""
    return [str(name) for name, entry in (beat_schedule or {}).items()
            if not (isinstance(entry, Mapping) and isinstance(entry.get("schedule"), TriggerSchedule))]


def warn_ignored_beat_schedule(beat_schedule: Mapping[str, Any] | None, log: logging.Logger) -> list[str]:
    """Log one warning per ignored entry; returns their names."""
    names = ignored_entries(beat_schedule)
    for name in names:
        log.warning("beat: app.conf.beat_schedule entry '%s' is ignored: beat runs only the validated schedule "
                    "(BEATKEEPER_SCHEDULE); import it with `beatkeeper import --from-celery MODULE:APP "
                    "--out schedule.yaml`", name)
    return names
