"""A small HTTP process serving ``/metrics`` (``beatkeeper metrics-server --port 8736``).

It stands in until the monitor serves the same WSGI app (``metrics_wsgi_app``) itself.
Each scrape reads Redis (``monitoring.metrics``), so any number of these may run.
"""
from __future__ import annotations

import logging
import threading
from socketserver import ThreadingMixIn
from typing import Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry

from monitoring.metrics import exposition

log = logging.getLogger(__name__)

#: Outside 9100-9999, the range of the Prometheus wiki's "default port allocations" (full since
#: 2023; 9808 there is celery-exporter's), and no common service's: beatkeeper runs beside them.
DEFAULT_PORT = 8736


def metrics_wsgi_app(registry: CollectorRegistry) -> Callable:
    """A WSGI app answering ``GET /metrics`` with the registry's exposition; 404 elsewhere."""

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") not in ("/metrics", "/metrics/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"beatkeeper: metrics are at /metrics\n"]
        try:
            body, content_type = exposition(registry, accept=environ.get("HTTP_ACCEPT"))
        except Exception as exc:  # Redis down: say so with a 503, never hang the scraper
            log.warning("metrics scrape failed: %r", exc)
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [f"beatkeeper: metrics unavailable: {type(exc).__name__}\n".encode()]
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    return app


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a stuck scrape never blocks shutdown


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # one line per scrape is noise
        log.debug(format, *args)


def make_metrics_server(registry: CollectorRegistry, *, host: str = "0.0.0.0", port: int = DEFAULT_PORT) -> WSGIServer:
    """A threading HTTP server for ``registry`` (port 0 picks a free one: read ``server_port``)."""
    return make_server(host, port, metrics_wsgi_app(registry), server_class=_ThreadingServer,
                       handler_class=_QuietHandler)


def serve_forever(registry: CollectorRegistry, *, host: str = "0.0.0.0", port: int = DEFAULT_PORT) -> None:
    """Serve ``/metrics`` in the foreground until interrupted."""
    server = make_metrics_server(registry, host=host, port=port)
    log.info("serving metrics on http://%s:%d/metrics", host, server.server_port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def serve_in_thread(registry: CollectorRegistry, *, host: str = "127.0.0.1", port: int = 0) -> WSGIServer:
    """Serve in a daemon thread (embedding, tests); ``server.shutdown()`` stops it."""
    server = make_metrics_server(registry, host=host, port=port)
    threading.Thread(target=server.serve_forever, name="beatkeeper-metrics", daemon=True).start()
    return server
