"""``beatkeeper metrics-server``: serve ``/metrics`` for Prometheus from Redis-held counters.

Any number may run (every scrape reads Redis); the monitor will serve the same WSGI app.
"""
from __future__ import annotations

import logging

import click

from monitoring.metrics import metrics_registry
from monitoring.metrics_server import DEFAULT_PORT, serve_forever
from tasks import app
from tasks.infra_errors import install_on
from tasks.redis_client import app_redis


@click.command("metrics-server")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=DEFAULT_PORT, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface, e.g. in a container).")
def command(port: int, host: str) -> None:
    """Serve the Prometheus metrics at http://HOST:PORT/metrics until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_on(logging.getLogger())  # an unreachable Redis or database is one line, not a traceback
    registry = metrics_registry(app_redis(app), redbeat_prefix=app.conf.redbeat_key_prefix)
    click.echo(f"beatkeeper: metrics at http://{host}:{port}/metrics", err=True)
    serve_forever(registry, host=host, port=port)
