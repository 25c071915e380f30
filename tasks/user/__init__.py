"""Your task modules: every module in this folder (``tasks/user/*.py``, names not starting with
``_``) is registered by every worker, beat and the CLI, with no variable to set -- so ``make run``,
the Docker image and compose carry them as they are. ``BEATKEEPER_TASK_MODULES`` adds modules
that live elsewhere (on ``PYTHONPATH``).

Found by listing this folder, not by importing it: a broken module is reported by Celery's loader
as one line naming it (``beatkeeper check`` first), like any module of ``BEATKEEPER_TASK_MODULES``.
"""
from __future__ import annotations

import pkgutil
from pathlib import Path

HOME = Path(__file__).resolve().parent


def user_task_modules(home: Path = HOME) -> list[str]:
    """``tasks.user.<name>`` for each module or package in ``home``, sorted."""
    return sorted(f"{__name__}.{m.name}" for m in pkgutil.iter_modules([str(home)]) if not m.name.startswith("_"))
