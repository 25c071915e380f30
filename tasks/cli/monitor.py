"""``beatkeeper monitor``: the long-running monitor process (a service of its own, beside beat
and the workers: a watchdog inside beat would die with it).

It evaluates the alert rules every ``BEATKEEPER_MONITOR_INTERVAL`` (5 s) and serves
``/metrics``, ``/healthz``, ``/readyz`` and the schedule dashboard (``monitoring.web``, at ``/``)
on ``BEATKEEPER_MONITOR_PORT`` (8736); see
``monitoring.monitor`` for its settings, ``monitoring.rules.settings`` for the thresholds
and ``monitoring.sinks`` for where alerts go. Procfile line::

    monitor: beatkeeper monitor

The app's facts (schedule, queues, key names, history) are wired into the ``monitoring``
package (which never imports ``tasks``) by ``tasks.wiring``, which ``beatkeeper status`` shares.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import replace

import click
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from monitoring.basic_auth import credentials_problem
from monitoring.broker_queues import QueueDepthCollector
from monitoring.metrics import metrics_registry
from monitoring.monitor import MonitorSettings
from monitoring.rules import MonitorSettingError
from monitoring.server import monitor_wsgi_app, serve_in_thread
from tasks import app
from tasks.infra.broker import broker_queues
from tasks.cli import EXIT_USAGE
from tasks.infra.errors import install_on
from tasks.infra.redis_tls import client_ssl_kwargs
from tasks.wiring import build_dashboard, build_monitor

log = logging.getLogger("beatkeeper.monitor")


def monitor_redis(url: str, *, timeout_s: float = 5.0, retries: bool = True) -> redis.Redis:
    """A client with short timeouts: the monitor must notice an outage, not wait it out."""
    options = {} if retries else {"retry": Retry(NoBackoff(), 0)}
    options.update(decode_responses=True, socket_connect_timeout=min(timeout_s, 2.0), socket_timeout=timeout_s,
                   health_check_interval=10)
    sentinel = app.conf.get("redis_sentinel")
    if sentinel is not None and url == app.conf.redis_url:  # the master Sentinel names: tasks/infra/redis_sentinel.py
        return sentinel.master_client(**options)
    return redis.Redis.from_url(url, **options, **client_ssl_kwargs(url))  # rediss://: tasks/infra/redis_tls.py


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
        monitor = build_monitor(app, settings, client=monitor_redis(app.conf.redis_url), ping_client=ping_client)
    except MonitorSettingError as exc:
        raise click.UsageError(str(exc)) from None
    registry = metrics_registry(monitor.client, redbeat_prefix=app.conf.redbeat_key_prefix)
    registry.register(QueueDepthCollector(monitor.broker, queues=lambda: _queues_in_use(monitor)))
    dashboard = build_dashboard(app, monitor, flower_url=os.environ.get("BEATKEEPER_FLOWER_URL") or None)
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


def _queues_in_use(monitor) -> list[str]:
    last = monitor.last_evaluation
    return sorted(last.queues) if last is not None and last.queues else [app.conf.task_default_queue]


def dashboard_credentials() -> tuple[str | None, str | None]:
    """(credentials, problem): FLOWER_BASIC_AUTH, else generated once in the data dir (as ``make run``)."""
    from tasks.cli.runner import RunnerError, flower_credentials

    try:
        credentials, path = flower_credentials()
    except RunnerError as exc:
        return None, str(exc)
    where = f"in {path}" if path else "FLOWER_BASIC_AUTH"
    log.info("monitor: BEATKEEPER_MONITOR_BASIC_AUTH unset: the dashboard asks for the credentials %s", where)
    return credentials, None
