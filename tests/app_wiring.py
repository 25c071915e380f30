"""Tests swap the app's shared objects (``app.beatkeeper``, ``tasks.wiring``) through these
one-liners: a private history database, a cache with ``refresh_s=0``, only the middlewares
under test. Nothing here keeps state of its own."""
from __future__ import annotations

from typing import Any

from tasks.guard.history import DRAINER, HistoryMiddleware


def installed_middlewares(app: Any) -> tuple | None:
    """The list the app built or was given, None before first use (to restore it afterwards)."""
    return app.beatkeeper._built.get("middlewares")


def set_middlewares(app: Any, middlewares: Any) -> None:
    """Replace the app's middleware list; None: the default list again, built on next use."""
    app.beatkeeper.replace(middlewares=middlewares)


def history_store_for(app: Any):
    return app.beatkeeper.history


def set_history_store(app: Any, store: Any) -> None:
    app.beatkeeper.replace(history=store)


def set_pipeline_store(app: Any, store: Any) -> None:
    app.beatkeeper.replace(pipelines=store)


def set_published_policies(app: Any, published: Any) -> None:
    app.beatkeeper.replace(published=published)


def set_scheduled_tasks(app: Any, view: Any) -> None:
    app.beatkeeper.replace(scheduled=view)


def history_middleware_for(app: Any) -> HistoryMiddleware:
    """The history middleware of the default list, with the process's drainer."""
    return HistoryMiddleware(app.beatkeeper.history, drainer=DRAINER)
