"""Which example (``examples/<name>/``) runs with the platform: ``BEATKEEPER_EXAMPLE=<name>``.

An example is a folder with ``schedule.yaml`` (joined to the platform's schedule) and
``jobs.py`` (joined to the task modules). Unset: the platform registers no example task.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from schedules.errors import SettingsError

EXAMPLE_ENV = "BEATKEEPER_EXAMPLE"
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
SCHEDULE_FILE = "schedule.yaml"


def available_examples() -> list[str]:
    """The example names: folders of ``examples/`` with a schedule file."""
    return sorted(p.parent.name for p in EXAMPLES_DIR.glob(f"*/{SCHEDULE_FILE}"))


def selected_example(environ: Mapping[str, str]) -> str | None:
    """The example named by ``BEATKEEPER_EXAMPLE``, or None; an unknown name is a SettingsError."""
    name = (environ.get(EXAMPLE_ENV) or "").strip()
    if not name:
        return None
    if name not in available_examples():
        raise SettingsError(EXAMPLE_ENV, name, f"no such example; choose one of {', '.join(available_examples())}")
    return name


def example_schedule_path(name: str) -> Path:
    return EXAMPLES_DIR / name / SCHEDULE_FILE


def example_task_module(name: str) -> str:
    return f"examples.{name}.jobs"
