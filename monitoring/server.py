"""The monitor's HTTP face: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz`` (JSON).

- ``/healthz``: the monitor itself is alive (its evaluation loop turns): 200, else 503.
  For a liveness probe: restarting the monitor is the fix.
- ``/readyz``: the platform is healthy: Redis answers (asked live, so recovery shows at
  once), the monitor's database is the deployment's history database (``monitoring.history_home``),
  beat's heartbeat is fresh, and every queue in use has a consumer (as of the
  latest evaluation). 200 or 503, with a reason per failing check. For a dashboard or an
  external uptime check, not for restarting the monitor.

With credentials (``BEATKEEPER_MONITOR_BASIC_AUTH``, set by ``make run`` and compose; else
Flower's, or generated once), every path but ``/healthz`` and ``/readyz`` answers 401 without
them (``/metrics`` too unless ``BEATKEEPER_MONITOR_METRICS_OPEN=1``): probes have no
credentials to send. Every other path is the schedule dashboard (``monitoring.web``).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis
from prometheus_client import CollectorRegistry

from monitoring.heartbeats import beat_heartbeat
from monitoring.history import HistoryStore
from monitoring.basic_auth import authorized
from monitoring.metrics import metrics_wsgi_app
from monitoring.monitor import Monitor

log = logging.getLogger(__name__)

PATHS = ("/metrics", "/healthz", "/readyz")


def readiness_report(monitor: Monitor, *, now: float, ping_client: redis.Redis) -> dict[str, Any]:
    """``{"ready": bool, "role": str, "checks": {"redis"|"history"|"beat"|"workers": {"ok": bool, "reason": str}},
    "at": ISO}``. A standby monitor judges nothing but its own readiness to lead: Redis."""
    checks = {"redis": _redis_check(ping_client)}
    if monitor.history is not None:  # any role: a monitor on a stranger's database is not ready to lead
        checks["history"] = _history_check(monitor.history) if checks["redis"]["ok"] else \
            {"ok": False, "reason": "unknown: Redis is unreachable"}
    role = monitor.leadership.role
    if role == "leader":
        checks["beat"] = _beat_check(monitor, ping_client, now) if checks["redis"]["ok"] else \
            {"ok": False, "reason": "unknown: Redis is unreachable"}
        checks["workers"] = _workers_check(monitor)
    return {"ready": all(c["ok"] for c in checks.values()), "role": role, "checks": checks,
            "at": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds")}


def _redis_check(client: redis.Redis) -> dict[str, Any]:
    try:
        client.ping()
    except redis.RedisError as exc:
        return {"ok": False, "reason": f"Redis is unreachable: {type(exc).__name__}: {exc}"}
    return {"ok": True, "reason": "answers PING"}


def _beat_check(monitor: Monitor, client: redis.Redis, now: float) -> dict[str, Any]:
    keys, limit_s = monitor.keys, monitor.settings.rules.heartbeat_max_age_s
    try:
        entries = [name for name, spec in monitor.specs.items() if spec.task == keys.heartbeat_task]
        heartbeat = beat_heartbeat(client, now=now, entries=entries, task=keys.heartbeat_task) if entries else None
        if heartbeat is not None and heartbeat.pause is None:
            age_s = heartbeat.age_s
            if age_s is None:
                return {"ok": False, "reason": "no beat heartbeat recorded yet"}
            return {"ok": age_s <= limit_s, "reason": f"heartbeat {age_s:.0f} s old (limit {limit_s:.0f} s)",
                    "age_s": round(age_s, 1)}
        why = "the heartbeat entry is switched off" if heartbeat is None else heartbeat.describe(limit_s)
        held = client.exists(keys.redbeat_lock_key)
        return {"ok": bool(held), "reason": f"{keys.redbeat_lock_key} {'held' if held else 'not held: beat is down'} "
                                            f"({why})"}
    except redis.RedisError as exc:
        return {"ok": False, "reason": f"unknown: {type(exc).__name__}: {exc}"}


def _history_check(history: HistoryStore) -> dict[str, Any]:
    """The spool drains here only into the deployment's one database (``monitoring.history_home``)."""
    try:
        refused = history.home_refusal()
    except Exception as exc:  # the database cannot be read (down, not migrated) or Redis failed mid-way
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        return {"ok": False, "reason": f"the history database cannot be read: {type(exc).__name__}: {first_line}"}
    if refused is not None:
        return {"ok": False, "reason": refused}
    return {"ok": True, "reason": "DATABASE_URL is the deployment's history database"}


def _workers_check(monitor: Monitor) -> dict[str, Any]:
    last = monitor.last_evaluation
    if last is None:
        return {"ok": False, "reason": "the monitor has not evaluated yet"}
    if last.queues is None:
        why = "Redis was unreachable" if last.redis_error else "workers were not asked"
        return {"ok": False, "reason": f"unknown at the latest evaluation: {why}"}
    unconsumed = sorted(q for q, f in last.queues.items() if not f["consumers"] and (f["entries"] or f["pending"]))
    workers = sorted({w for f in last.queues.values() for w in f["consumers"]})
    if unconsumed:
        return {"ok": False, "reason": f"no worker consumes {', '.join(unconsumed)}", "workers": workers}
    return {"ok": True, "reason": f"{len(workers)} worker(s) consume every queue in use", "workers": workers}


def monitor_wsgi_app(monitor: Monitor, *, registry: CollectorRegistry, ping_client: redis.Redis,
                     clock: Callable[[], float] = time.time, basic_auth: str | None = None,
                     dashboard: Callable | None = None, metrics_open: bool = False) -> Callable:
    """The WSGI app of the three endpoints, every other path to ``dashboard`` (``monitoring.web``;
    404 with the list without it); behind ``basic_auth`` (``user:password``) when given, except
    the probes ``/healthz`` and ``/readyz`` (and ``/metrics`` when ``metrics_open``)."""
    metrics = metrics_wsgi_app(registry)
    open_paths = {"/healthz", "/readyz", "/metrics"} if metrics_open else {"/healthz", "/readyz"}

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/").rstrip("/") or "/"
        if basic_auth and path not in open_paths and not authorized(environ.get("HTTP_AUTHORIZATION"), basic_auth):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                                ("WWW-Authenticate", 'Basic realm="beatkeeper monitor"')])
            return [b"beatkeeper monitor: credentials required\n"]
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/healthz":
            body = monitor.liveness()
            return _json(start_response, body, ok=body["alive"])
        if path == "/readyz":
            try:
                body = readiness_report(monitor, now=clock(), ping_client=ping_client)
            except Exception as exc:  # a probe must get an answer, never a hang or a traceback
                log.exception("readyz failed")
                body = {"ready": False, "checks": {}, "error": f"{type(exc).__name__}: {exc}"}
            return _json(start_response, body, ok=body["ready"])
        if dashboard is not None:
            return dashboard(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [f"beatkeeper monitor: try {', '.join(PATHS)}\n".encode()]

    return app


def _json(start_response: Callable, body: dict, *, ok: bool) -> list[bytes]:
    data = json.dumps(body, sort_keys=True, default=str).encode()
    start_response("200 OK" if ok else "503 Service Unavailable",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a stuck client never blocks shutdown


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # a probe every few seconds is noise
        log.debug(format, *args)


def serve_in_thread(app: Callable, *, host: str = "127.0.0.1", port: int = 0) -> WSGIServer:
    """Serve ``app`` from a daemon thread (port 0 picks a free one: read ``server_port``);
    ``server.shutdown()`` then ``server_close()`` stop it."""
    server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="beatkeeper-monitor-http", daemon=True).start()
    return server
