"""Helpers for the dashboard's tests: a WSGI request without a server, and a schedule with one
entry in every row state."""
from __future__ import annotations

import base64
import io
import json
from urllib.parse import urlencode
from wsgiref.util import setup_testing_defaults

ROW_ENTRIES = {  # entry -> the row state it is made to show
    "nightly-ok": "ok", "paused-one": "paused", "running-one": "running", "late-one": "late",
    "missed-one": "missed", "failing-one": "failing", "never-one": "never ran",
    "overlap-one": "skipped by overlap", "dead-one": "dead-lettered"}
SCRIPT = "<script>alert(1)</script>"


def call(app, path: str, *, query: dict | None = None, form: dict | None = None, user: str | None = "ops:s3cret"):
    """``(status code, headers, body)`` of one request to ``app``."""
    environ: dict = {}
    setup_testing_defaults(environ)
    environ["PATH_INFO"] = path
    environ["QUERY_STRING"] = urlencode(query or {}, doseq=True)
    if user:
        environ["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(user.encode()).decode()
    if form is not None:
        body = urlencode(form).encode()
        environ.update(REQUEST_METHOD="POST", CONTENT_LENGTH=str(len(body)), wsgi=None)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = int(status.split()[0]), dict(headers)

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def json_of(app, path: str, **query) -> dict:
    status, _, body = call(app, path, query=query)
    assert status == 200, body
    return json.loads(body)
