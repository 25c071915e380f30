"""Real local HTTP servers for the GTFS tests (stdlib ``http.server`` in a thread).

* :class:`FeedServer` serves one feed zip with an ETag and a Last-Modified, answers
  ``If-None-Match`` / ``If-Modified-Since`` with 304, and counts what it answered.
* :class:`PutReceiver` is a tiny object store: ``PUT /<name>`` stores, ``GET /<name>`` returns
  (404 when absent); it logs every request and can be told to refuse PUTs of one name.
"""
from __future__ import annotations

import hashlib
import threading
from collections import Counter
from datetime import datetime, timezone
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.owner = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep test output clean
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD" and status != 304:
            self.wfile.write(body)


class _FeedHandler(_Quiet):
    def do_GET(self):
        server: FeedServer = self.server.owner
        with server.lock:
            server.counts["requests"] += 1
            if server.fail_status is not None:
                server.counts["errors"] += 1
                return self._reply(server.fail_status, b"feed unavailable")
            validators = {"ETag": server.etag, "Last-Modified": server.last_modified} if server.send_validators else {}
            if server.send_validators and server.not_modified(self.headers):
                server.counts["not_modified"] += 1
                return self._reply(304, headers=validators)
            server.counts["full"] += 1
            body = server.body
        self._reply(200, body, {"Content-Type": "application/zip", **validators})


class FeedServer(_Server):
    """Serves ``/feed.zip``; :meth:`set_feed` changes the body, its ETag and Last-Modified."""

    def __init__(self, body: bytes = b"", *, modified_at: datetime = datetime(2024, 3, 1, tzinfo=timezone.utc)):
        super().__init__(_FeedHandler)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.send_validators = True
        self.fail_status: int | None = None
        self.set_feed(body, modified_at=modified_at)

    @property
    def url(self) -> str:
        return f"{self.base_url}/feed.zip"

    def set_feed(self, body: bytes, *, modified_at: datetime) -> None:
        with self.lock:
            self.body = body
            self.etag = f'"{hashlib.sha256(body).hexdigest()[:20]}"'
            self.modified_at = modified_at.replace(microsecond=0)
            self.last_modified = format_datetime(self.modified_at, usegmt=True)

    def not_modified(self, headers) -> bool:
        """RFC 9110: If-None-Match wins when present; else If-Modified-Since."""
        if_none_match = headers.get("If-None-Match")
        if if_none_match is not None:
            tags = {t.strip() for t in if_none_match.split(",")}
            return "*" in tags or self.etag in tags or f"W/{self.etag}" in tags
        if_modified_since = headers.get("If-Modified-Since")
        if if_modified_since:
            try:
                return self.modified_at <= parsedate_to_datetime(if_modified_since)
            except (TypeError, ValueError):
                return False
        return False


class _StoreHandler(_Quiet):
    def do_GET(self):
        store: PutReceiver = self.server.owner
        name = self.path.lstrip("/")
        with store.lock:
            store.log.append(("GET", name))
            body = store.objects.get(name)
        self._reply(404, b"not found") if body is None else self._reply(200, body)

    def do_PUT(self):
        store: PutReceiver = self.server.owner
        name = self.path.lstrip("/")
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with store.lock:
            store.log.append(("PUT", name))
            if name in store.refuse_puts:
                return self._reply(503, b"refused")
            store.objects[name] = body
        self._reply(201)


class PutReceiver(_Server):
    """A PUT/GET object store rooted at ``/`` (the publish target is :attr:`base_url`)."""

    def __init__(self):
        super().__init__(_StoreHandler)
        self.lock = threading.Lock()
        self.objects: dict[str, bytes] = {}
        self.log: list[tuple[str, str]] = []
        self.refuse_puts: set[str] = set()

    def puts(self) -> list[str]:
        with self.lock:
            return [name for method, name in self.log if method == "PUT"]
