"""The dashboard's WSGI app: the pages, their JSON, the badges and the actions.

``monitoring.server`` routes every path it does not serve itself here, after its basic-auth
check; the user named by the credentials is who an action is recorded as. Each action is a
GET of its confirmation page (safe) then a POST carrying the CSRF token; a POST without a
valid token is refused with 403 and does nothing.
"""
from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlencode

from monitoring.web.actions import ActionRefused, Actions
from monitoring.web.csrf import CsrfTokens
from monitoring.web.entry_data import entry_data
from monitoring.web.forms import ACTIONS, confirm_page, parse_until, read_form, result_page
from monitoring.web.overview_data import overview_data
from monitoring.web.pages import alerts_page, entry_page, overview_page, platform_page
from monitoring.web.platform_data import alerts_data, platform_data
from monitoring.web.sources import DashboardSources
from monitoring.web.svg import badge

log = logging.getLogger(__name__)

PATHS = ("/", "/overview.json", "/entry", "/entry.json", "/badge.svg", "/platform", "/platform.json", "/alerts",
         "/alerts.json", "/confirm", "/action")


def dashboard_app(sources: DashboardSources, actions: Actions | None = None, *,
                  csrf: CsrfTokens | None = None) -> Callable:
    """The WSGI app; ``actions`` None shows the pages without buttons that work (refused in one line)."""
    csrf = csrf or CsrfTokens()

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/").rstrip("/") or "/"
        query = {k: v for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
        first = {k: v[0] for k, v in query.items()}
        who = user_of(environ)
        if path == "/action":
            if environ.get("REQUEST_METHOD") != "POST":
                return _send(start_response, "405 Method Not Allowed", b"POST only\n", "text/plain")
            return _act(read_form(environ), who=who, csrf=csrf, actions=actions, sources=sources,
                        start_response=start_response)
        if path == "/":
            data = overview_data(sources, state=first.get("state", ""), queue=first.get("queue", ""),
                                 search=first.get("search", ""))
            return _html(start_response, overview_page(data))
        if path == "/overview.json":
            return _json(start_response, overview_data(sources, state=first.get("state", ""),
                                                       queue=first.get("queue", ""), search=first.get("search", "")))
        if path in ("/entry", "/entry.json"):
            data = entry_data(sources, first.get("name", ""), statuses=query.get("status", []),
                              page=_int(first.get("page"), 1))
            if data is None:
                return _send(start_response, "404 Not Found", f"no entry {first.get('name', '')!r}\n".encode(),
                             "text/plain; charset=utf-8")
            return _json(start_response, data) if path.endswith(".json") else _html(start_response, entry_page(data))
        if path == "/badge.svg":
            name = first.get("name", "")
            rows = overview_data(DashboardSources(**{**sources.__dict__, "specs": _only(sources, name)}))["entries"]
            svg = badge(name, rows[0]["row_state"] if rows else "unknown")
            return _send(start_response, "200 OK" if rows else "404 Not Found", svg, "image/svg+xml",
                         [("Cache-Control", "no-cache")])
        if path == "/platform":
            return _html(start_response, platform_page(platform_data(sources)))
        if path == "/platform.json":
            return _json(start_response, platform_data(sources))
        if path == "/alerts":
            return _html(start_response, alerts_page(alerts_data(sources)))
        if path == "/alerts.json":
            return _json(start_response, alerts_data(sources))
        if path == "/confirm" and first.get("action") in ACTIONS:
            return _html(start_response, confirm_page(first["action"], first.get("target", ""),
                                                      csrf=csrf.token_for(who)))
        return _send(start_response, "404 Not Found", f"beatkeeper monitor: try {', '.join(PATHS)}\n".encode(),
                     "text/plain")

    return app


def _act(form: dict[str, str], *, who: str, csrf: CsrfTokens, actions: Actions | None, sources: DashboardSources,
         start_response: Callable) -> Iterable[bytes]:
    if not csrf.valid(who, form.get("csrf")):
        return _send(start_response, "403 Forbidden", result_page("refused: the form's CSRF token is missing or "
                                                                  "wrong; open the page again", ok=False),
                     "text/html; charset=utf-8")
    action, target = form.get("action", ""), form.get("target", "")
    if actions is None or action not in ACTIONS or not target:
        return _send(start_response, "400 Bad Request", result_page(f"unknown action {action!r}", ok=False),
                     "text/html; charset=utf-8")
    back = "/entry?" + urlencode({"name": target}) if action in ("run_now", "pause", "resume") else "/platform"
    try:
        if action == "run_now":
            message = actions.run_now(target, who=who)
        elif action == "pause":
            message = actions.pause(target, until_s=parse_until(form.get("until", ""), now=sources.clock()),
                                    reason=form.get("reason", ""), who=who)
        elif action == "resume":
            message = actions.resume(target, who=who)
        elif action == "resume_pipeline":
            message = actions.resume_pipeline(target, who=who)
        else:
            message = actions.requeue_dead_letter(target, who=who)
    except (ActionRefused, ValueError) as exc:
        return _send(start_response, "409 Conflict", result_page(f"refused: {exc}", ok=False, back=back),
                     "text/html; charset=utf-8")
    log.info("dashboard: %s %s by %s: %s", action, target, who, message)
    return _html(start_response, result_page(message, ok=True, back=back))


def user_of(environ: dict) -> str:
    """Who is asking: the basic-auth user (the server checked the password), else the client's address."""
    scheme, _, token = (environ.get("HTTP_AUTHORIZATION") or "").partition(" ")
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(token.strip()).decode().partition(":")[0] or "anonymous"
        except ValueError:
            pass
    return f"anonymous@{environ.get('REMOTE_ADDR', '?')}"


def _only(sources: DashboardSources, name: str) -> Callable[[], dict]:
    def specs() -> dict:
        spec = sources.specs().get(name)
        return {} if spec is None else {name: spec}
    return specs


def _int(text: str | None, default: int) -> int:
    try:
        return int(text or default)
    except ValueError:
        return default


def _html(start_response: Callable, body: bytes) -> list[bytes]:
    return _send(start_response, "200 OK", body, "text/html; charset=utf-8")


def _json(start_response: Callable, data: Any) -> list[bytes]:
    return _send(start_response, "200 OK", json.dumps(data, sort_keys=True, default=str).encode(), "application/json")


def _send(start_response: Callable, status: str, body: bytes, content_type: str,
          extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                            ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                            ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
                                                        "img-src 'self'; form-action 'self'"),
                            *(extra or [])])
    return [body]
