"""The conditional GET against a real local HTTP server."""
from __future__ import annotations

import hashlib
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from examples.transit.gtfs.errors import GtfsDownloadError
from examples.transit.gtfs.feed import download_feed


def test_first_download_streams_body_and_keeps_validators(feed_server, tmp_path):
    got = download_feed(feed_server.url, dest_path=tmp_path / "feed.zip")
    assert not got.not_modified
    assert got.path.read_bytes() == feed_server.body
    assert got.sha256 == hashlib.sha256(feed_server.body).hexdigest()
    assert (got.etag, got.last_modified) == (feed_server.etag, feed_server.last_modified)


def test_same_etag_gets_304_and_no_body(feed_server, tmp_path):
    first = download_feed(feed_server.url, dest_path=tmp_path / "a.zip")
    again = download_feed(feed_server.url, dest_path=tmp_path / "b.zip", etag=first.etag,
                          last_modified=first.last_modified)
    assert again.not_modified and again.path is None
    assert not (tmp_path / "b.zip").exists()
    assert feed_server.counts["not_modified"] == 1 and feed_server.counts["full"] == 1


def test_changed_feed_gets_full_body_despite_old_etag(feed_server, tmp_path):
    first = download_feed(feed_server.url, dest_path=tmp_path / "a.zip")
    feed_server.set_feed(b"new feed bytes", modified_at=datetime(2024, 3, 2, tzinfo=timezone.utc))
    again = download_feed(feed_server.url, dest_path=tmp_path / "b.zip", etag=first.etag,
                          last_modified=first.last_modified)
    assert not again.not_modified
    assert again.path.read_bytes() == b"new feed bytes" and again.etag != first.etag


def test_last_modified_alone_gives_304(feed_server, tmp_path):
    first = download_feed(feed_server.url, dest_path=tmp_path / "a.zip")
    again = download_feed(feed_server.url, dest_path=tmp_path / "b.zip", last_modified=first.last_modified)
    assert again.not_modified


def test_http_error_is_a_download_error_with_status(feed_server, tmp_path):
    feed_server.fail_status = 503
    with pytest.raises(GtfsDownloadError) as caught:
        download_feed(feed_server.url, dest_path=tmp_path / "feed.zip")
    assert caught.value.status == 503
    assert str(caught.value) == f"GET {feed_server.url} failed: HTTP 503 Service Unavailable"


def test_refused_connection_is_a_download_error(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()  # nothing listens on the port any more
    with pytest.raises(GtfsDownloadError) as caught:
        download_feed(f"http://127.0.0.1:{port}/feed.zip", dest_path=tmp_path / "feed.zip", timeout_s=5)
    assert caught.value.status is None


def test_silent_server_times_out(tmp_path):
    release = threading.Event()

    class Silent(BaseHTTPRequestHandler):
        def do_GET(self):
            release.wait(10)  # answers only after the client has given up

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Silent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(GtfsDownloadError) as caught:
            download_feed(f"http://127.0.0.1:{server.server_address[1]}/", dest_path=tmp_path / "f.zip",
                          timeout_s=0.2)
        assert caught.value.reason == "no response within 0.2 s"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_oversized_body_is_refused(feed_server, tmp_path):
    with pytest.raises(GtfsDownloadError, match="larger than 100 bytes"):
        download_feed(feed_server.url, dest_path=tmp_path / "feed.zip", max_bytes=100)


def test_plain_path_is_read_as_file_url(tmp_path):
    source = tmp_path / "local.zip"
    source.write_bytes(b"zip bytes")
    got = download_feed(str(source), dest_path=tmp_path / "copy.zip")
    assert got.path.read_bytes() == b"zip bytes" and got.url == source.as_uri()
