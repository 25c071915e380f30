"""``beatkeeper monitor``: the long-running monitor process (a service of its own, beside beat
and the workers: a watchdog inside beat would die with it).

It evaluates the alert rules every ``BEATKEEPER_MONITOR_INTERVAL`` (5 s) and serves
``/metrics``, ``/healthz``, ``/readyz`` and the schedule dashboard (``monitoring.web``, at ``/``)
on ``BEATKEEPER_MONITOR_PORT`` (8736); see
``monitoring.monitor`` for its settings, ``monitoring.rules.settings`` for the thresholds
and ``monitoring.sinks`` for where alerts go. Procfile line::

    monitor: beatkeeper monitor

This module also wires the app's facts (schedule, queues, key names, history) into the
``monitoring`` package, which never imports ``tasks``; ``beatkeeper status`` reuses it.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone

import click
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from monitoring.basic_auth import credentials_problem
from monitoring.metrics import metrics_registry
from monitoring.monitor import Monitor, MonitorSettings
from monitoring.rules import CeleryWorkers, MonitorSettingError, PlatformKeys
from monitoring.server import monitor_wsgi_app, serve_in_thread
from monitoring.sinks import Dispatcher, sinks_from_env
from schedules.entry import EntrySpec
from schedules.killswitch import partition_enabled
from tasks import app
from tasks.cli import EXIT_USAGE
from tasks.history_mw import history_store_for
from tasks.infra_errors import install_on, masked_redis_url
from tasks.locks import META_SUFFIX
from tasks.policy import LOCK_PREFIX
from tasks.redis_tls import client_ssl_kwargs
from tasks.schedule_source import load_validated_schedule
from tasks.dynamic_specs import readable_dynamic_specs

log = logging.getLogger("beatkeeper.monitor")


def platform_keys(celery_app=app) -> PlatformKeys:
    """The key names and task names of this deployment."""
    return PlatformKeys(redbeat_prefix=celery_app.conf.redbeat_key_prefix, lock_prefix=LOCK_PREFIX,
                        lock_meta_suffix=META_SUFFIX, default_queue=celery_app.conf.task_default_queue)


def queue_router(celery_app=app) -> Callable[[EntrySpec], str]:
    """The queue each entry's runs go to: its own ``queue``, else the app's routing."""
    def queue_of(spec: EntrySpec) -> str:
        if spec.queue:
            return spec.queue
        queue = celery_app.amqp.router.route({}, spec.task, (), {}).get("queue")
        return getattr(queue, "name", None) or celery_app.conf.task_default_queue
    return queue_of


def registered_specs(now: datetime) -> dict[str, EntrySpec]:
    """The entries beat registers at ``now``: the validated schedule minus the kill-switched, and
    the dynamic entries (``tasks.dynamic_entries``; none when Redis cannot be read)."""
    kept = partition_enabled(load_validated_schedule(app, now=now), os.environ)[0]
    client = monitor_redis(app.conf.redis_url, timeout_s=2.0, retries=False)
    try:
        return {**kept, **readable_dynamic_specs(client, now)}
    finally:
        client.close()


def monitor_redis(url: str, *, timeout_s: float = 5.0, retries: bool = True) -> redis.Redis:
    """A client with short timeouts: the monitor must notice an outage, not wait it out."""
    options = {} if retries else {"retry": Retry(NoBackoff(), 0)}
    return redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=min(timeout_s, 2.0),
                                socket_timeout=timeout_s, health_check_interval=10, **options,
                                **client_ssl_kwargs(url))  # rediss://: tasks/redis_tls.py


def build_monitor(settings: MonitorSettings, *, client: redis.Redis, ping_client: redis.Redis) -> Monitor:
    """The monitor of this deployment, with the sinks the environment configures."""
    dispatcher = Dispatcher(sinks_from_env(os.environ), client=client, attempts=settings.sink_attempts)
    return Monitor(client=client, load_specs=registered_specs, settings=settings, history=history_store_for(app),
                   workers=CeleryWorkers(app, timeout_s=settings.inspect_timeout_s), keys=platform_keys(),
                   queue_of=queue_router(), dispatcher=dispatcher, ping_client=ping_client,
                   redis_label=f"Redis at REDIS_URL={masked_redis_url(app.conf.redis_url)}")


@click.command("monitor")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=None,
              help="HTTP port of /metrics, /healthz, /readyz (default: BEATKEEPER_MONITOR_PORT or 8736).")
@click.option("--host", default=None, help="Address to listen on (default: BEATKEEPER_MONITOR_HOST or 127.0.0.1).")
@click.option("--interval", type=click.FloatRange(min=0.1), default=None,
              help="Seconds between evaluations (default: BEATKEEPER_MONITOR_INTERVAL or 5).")
def command(port: int | None, host: str | None, interval: float | None) -> None:
    """Watch beat, workers, queues and every entry's runs; alert on what goes wrong."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_on(logging.getLogger())  # an unreachable Redis or database is one line, not a traceback
    try:
        settings = MonitorSettings.from_env(os.environ)
    except MonitorSettingError as exc:
        raise click.UsageError(str(exc)) from None
    settings = replace(settings, port=settings.port if port is None else port, host=host or settings.host,
                       interval_s=interval or settings.interval_s)
    basic_auth = os.environ.get("BEATKEEPER_MONITOR_BASIC_AUTH") or None
    problem = basic_auth and credentials_problem("BEATKEEPER_MONITOR_BASIC_AUTH", basic_auth)
    if not basic_auth and not problem:  # the dashboard's actions never go unguarded: Flower's, or generated once
        basic_auth, problem = dashboard_credentials()
    if problem:
        click.echo(f"beatkeeper: {problem}", err=True)
        raise SystemExit(EXIT_USAGE)
    ping_client = monitor_redis(app.conf.redis_url, timeout_s=1.0, retries=False)
    try:
        monitor = build_monitor(settings, client=monitor_redis(app.conf.redis_url), ping_client=ping_client)
    except MonitorSettingError as exc:
        raise click.UsageError(str(exc)) from None
    registry = metrics_registry(monitor.client, redbeat_prefix=app.conf.redbeat_key_prefix)
    dashboard = dashboard_for(monitor)
    server = serve_in_thread(monitor_wsgi_app(monitor, registry=registry, ping_client=ping_client,
                                              basic_auth=basic_auth, dashboard=dashboard,
                                              metrics_open=os.environ.get("BEATKEEPER_MONITOR_METRICS_OPEN") == "1"),
                             host=settings.host, port=settings.port)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    sinks = ", ".join(["log"] + [d.sink.name for d in monitor.dispatcher.deliveries])
    auth = "behind credentials but /healthz and /readyz"
    click.echo(f"beatkeeper: monitor on http://{settings.host}:{server.server_port} "
               f"(dashboard at /, /metrics /healthz /readyz; {auth}); alerts to {sinks}", err=True)
    monitor.dispatcher.start()
    try:
        monitor.run(stop=stop)
    finally:
        server.shutdown()
        server.server_close()
        monitor.dispatcher.stop()
        log.info("monitor: stopped")


def dashboard_credentials() -> tuple[str | None, str | None]:
    """(credentials, problem): FLOWER_BASIC_AUTH, else generated once in the data dir (as ``make run``)."""
    from tasks.runner import RunnerError, flower_credentials

    try:
        credentials, path = flower_credentials()
    except RunnerError as exc:
        return None, str(exc)
    where = f"in {path}" if path else "FLOWER_BASIC_AUTH"
    log.info("monitor: BEATKEEPER_MONITOR_BASIC_AUTH unset: the dashboard asks for the credentials %s", where)
    return credentials, None


def dashboard_for(monitor: Monitor) -> Callable:
    """The schedule dashboard (``monitoring.web``) wired to this deployment."""
    from monitoring.web.app import dashboard_app
    from monitoring.web.sources import DashboardSources
    from tasks.dashboard_actions import dashboard_actions
    from tasks.identity import DEAD_LETTERS_KEY
    from tasks.pipeline_steps import pipeline_store_for

    def current_specs() -> dict[str, EntrySpec]:  # a standby monitor has not loaded them
        return monitor.specs or registered_specs(datetime.now(timezone.utc))

    def queues() -> dict | None:
        last = monitor.last_evaluation
        return None if last is None else last.queues

    sources = DashboardSources(client=monitor.client, specs=current_specs, history=monitor.history,
                               keys=monitor.keys, queue_of=monitor.queue_of, queues=queues,
                               pipelines=pipeline_store_for(app), dead_letters_key=DEAD_LETTERS_KEY,
                               flower_url=os.environ.get("BEATKEEPER_FLOWER_URL") or None)
    return dashboard_app(sources, dashboard_actions(app, monitor.client))
