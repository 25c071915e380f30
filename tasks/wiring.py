"""The one composition root: the objects an app's processes share, each built once, installed
as ``app.beatkeeper`` -- the only attribute beatkeeper adds to the Celery app.

Building blocks never look each other up: the guard takes its middleware list from here, and each
middleware, store and view is built with what it uses as arguments (its Redis client, the history
store, beat's published policies). Each object is built on first use, so a process pays only
for what it uses (the CLI never builds the middlewares). :meth:`Wiring.replace` swaps one (tests,
or a deployment bringing its own engine); the objects built from it follow on next use.

Imported by ``tasks.application`` (which installs it) and ``tasks.cli`` (the monitor's wiring,
:func:`build_monitor`) only: ``tests/test_layers.py``.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import redis

from monitoring.db import database_url, engine_for
from monitoring.history import HistoryStore
from monitoring.pipelines import PipelineStore
from schedules.entry import EntrySpec
from schedules.killswitch import partition_enabled
from tasks.beat.schedule_source import load_validated_schedule
from tasks.dynamic.specs import readable_dynamic_specs
from tasks.guard import standard_middlewares
from tasks.guard.identity import DEAD_LETTERS_KEY
from tasks.guard.middleware import Middleware
from tasks.guard.scope import ScheduledTasks
from tasks.infra.broker import broker_queues
from tasks.infra.errors import masked_redis_url
from tasks.infra.redis_client import app_redis
from tasks.locks.fenced import META_SUFFIX
from tasks.policy import LOCK_PREFIX, PublishedPolicies

if TYPE_CHECKING:
    from monitoring.monitor import Monitor, MonitorSettings
    from monitoring.rules import PlatformKeys

ATTRIBUTE = "beatkeeper"  # app.beatkeeper: the app's Wiring


class Wiring:
    """The shared objects of one app (see the module docstring)."""

    def __init__(self, app: Any):
        self.app = app
        self._built: dict[str, Any] = {}
        self._lock = threading.RLock()

    def _get(self, name: str, build: Callable[[], Any]) -> Any:
        built = self._built.get(name)
        if built is None:
            with self._lock:
                built = self._built.get(name)
                if built is None:
                    built = self._built[name] = build()
        return built

    def replace(self, **objects: Any) -> None:
        """Replace shared objects by name (``history=store``); None builds it again on next use.
        The middlewares read the published policies and the history's engine on each use; the
        history middleware keeps the store it was built with (replace ``middlewares`` too)."""
        with self._lock:
            for name, value in objects.items():
                if name not in _NAMES:
                    raise TypeError(f"no shared object named {name!r}")
                if value is None:
                    self._built.pop(name, None)
                else:
                    self._built[name] = tuple(value) if name == "middlewares" else value
            self._built.pop("plain_middlewares", None)

    @property
    def redis(self) -> redis.Redis:
        """The client for beatkeeper's own keys (``REDIS_URL``)."""
        return self._get("redis", lambda: app_redis(self.app))

    @property
    def database_url(self) -> str:
        return self.app.conf.get("database_url") or database_url()

    @property
    def history(self) -> HistoryStore:
        """The execution history: ``DATABASE_URL`` (or the SQLite default) and the app's Redis."""
        return self._get("history", lambda: HistoryStore(lambda: engine_for(self.database_url),
                                                         redis_client=self.redis))

    @property
    def pipelines(self) -> PipelineStore:
        """The pipeline runs, in the history's database."""
        return self._get("pipelines", lambda: PipelineStore(lambda: engine_for(self.database_url)))

    @property
    def published(self) -> PublishedPolicies:
        """A worker's cached view of the entry policies and budgets beat published."""
        return self._get("published", lambda: PublishedPolicies(self.redis))

    @property
    def scheduled(self) -> ScheduledTasks:
        """A worker's cached view of the task names the schedule runs (``tasks.guard.scope``)."""
        return self._get("scheduled", lambda: ScheduledTasks(self.redis))

    @property
    def middlewares(self) -> tuple[Middleware, ...]:
        """The middlewares around every guarded run, in the default order (``tasks.guard``)."""
        return self._get("middlewares", lambda: tuple(standard_middlewares(
            self.app, client=self.redis, history=lambda: self.history, published=lambda: self.published)))

    @property
    def plain_middlewares(self) -> tuple[Middleware, ...]:
        """What a plain run passes through: each middleware's ``for_plain_runs()``."""
        full = self.middlewares
        return self._get("plain_middlewares", lambda: tuple(
            v for v in (m.for_plain_runs() for m in full) if v is not None))


_NAMES = {name for name, value in vars(Wiring).items() if isinstance(value, property)} - {"database_url"}


def install(app: Any) -> Wiring:
    """Give ``app`` its wiring (``tasks.application``, once)."""
    wiring = Wiring(app)
    setattr(app, ATTRIBUTE, wiring)
    return wiring


# -- the monitor (a process of its own: ``beatkeeper monitor``, and ``beatkeeper status``) ----------
# The monitoring imports below stay inside the functions: only the monitor process pays for them.
def platform_keys(app: Any) -> PlatformKeys:
    """The key names and task names of this deployment."""
    from monitoring.rules import PlatformKeys

    return PlatformKeys(redbeat_prefix=app.conf.redbeat_key_prefix, lock_prefix=LOCK_PREFIX,
                        lock_meta_suffix=META_SUFFIX, default_queue=app.conf.task_default_queue)


def queue_router(app: Any) -> Callable[[EntrySpec], str]:
    """The queue each entry's runs go to: its own ``queue``, else the app's routing."""
    def queue_of(spec: EntrySpec) -> str:
        if spec.queue:
            return spec.queue
        queue = app.amqp.router.route({}, spec.task, (), {}).get("queue")
        return getattr(queue, "name", None) or app.conf.task_default_queue
    return queue_of


def specs_loader(app: Any, client: redis.Redis | None = None) -> Callable[[datetime], dict[str, EntrySpec]]:
    """The entries beat registers at a given instant: the validated schedule minus the kill-switched,
    and with ``client`` the dynamic entries (``tasks.dynamic``; none when Redis cannot be read)."""
    def registered_specs(now: datetime) -> dict[str, EntrySpec]:
        kept = partition_enabled(load_validated_schedule(app, now=now), os.environ)[0]
        return kept if client is None else {**kept, **readable_dynamic_specs(client, now)}
    return registered_specs


def build_monitor(app: Any, settings: MonitorSettings, *, client: redis.Redis, ping_client: redis.Redis) -> Monitor:
    """The monitor of this deployment, with the sinks the environment configures."""
    from monitoring.monitor import Monitor
    from monitoring.rules import CeleryWorkers
    from monitoring.sinks import Dispatcher, sinks_from_env

    dispatcher = Dispatcher(sinks_from_env(os.environ), client=client, attempts=settings.sink_attempts)
    return Monitor(client=client, load_specs=specs_loader(app, client), settings=settings,
                   history=app.beatkeeper.history, workers=CeleryWorkers(app, timeout_s=settings.inspect_timeout_s),
                   keys=platform_keys(app), queue_of=queue_router(app), dispatcher=dispatcher, ping_client=ping_client,
                   redis_label=f"Redis at REDIS_URL={masked_redis_url(app.conf.redis_url)}",
                   broker=broker_queues(app))  # queue depth from the broker, wherever it is


def build_dashboard(app: Any, monitor: Monitor, *, flower_url: str | None) -> Callable:
    """The schedule dashboard (``monitoring.web``) wired to this deployment."""
    from monitoring.web.app import dashboard_app
    from monitoring.web.sources import DashboardSources
    from tasks.actions.dashboard import dashboard_actions

    def current_specs() -> dict[str, EntrySpec]:  # a standby monitor has not loaded them
        return monitor.specs or specs_loader(app, monitor.client)(datetime.now(timezone.utc))

    def queues() -> dict | None:
        last = monitor.last_evaluation
        return None if last is None else last.queues

    sources = DashboardSources(client=monitor.client, specs=current_specs, history=monitor.history,
                               keys=monitor.keys, queue_of=monitor.queue_of, queues=queues,
                               pipelines=app.beatkeeper.pipelines, dead_letters_key=DEAD_LETTERS_KEY,
                               flower_url=flower_url)
    return dashboard_app(sources, dashboard_actions(app, monitor.client))
