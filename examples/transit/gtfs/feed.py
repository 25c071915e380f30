"""Downloading a GTFS static zip with a conditional GET, hashing it as it streams to disk.

The caller passes the ETag and Last-Modified it kept from the last successful load; the
server answers 304 when the feed has not changed and nothing is downloaded. Servers without
validators still send the whole file: the sha256 then tells whether it changed.
``http(s)://`` and ``file://`` URLs are accepted (a plain path is read as ``file://``).
"""
from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from examples.transit.gtfs.errors import GtfsDownloadError

DEFAULT_TIMEOUT_S = 60.0  # seconds without a byte from the server before giving up
DEFAULT_MAX_BYTES = 2 * 1024**3  # refuse a feed larger than this: a runaway response, not a feed
_CHUNK_BYTES = 1024 * 1024
USER_AGENT = "beatkeeper-gtfs/1"


@dataclass(frozen=True)
class FeedDownload:
    """What a conditional GET returned. ``not_modified``: a 304, ``path`` and ``sha256`` are None."""

    url: str
    not_modified: bool
    path: Path | None = None
    sha256: str | None = None
    size_bytes: int = 0
    etag: str | None = None
    last_modified: str | None = None


def _as_url(source: str) -> str:
    return source if "://" in source else Path(source).resolve().as_uri()


def download_feed(url: str, *, dest_path: Path, etag: str | None = None, last_modified: str | None = None,
                  timeout_s: float = DEFAULT_TIMEOUT_S, max_bytes: int = DEFAULT_MAX_BYTES) -> FeedDownload:
    """GET ``url`` into ``dest_path`` unless the server says it has not changed since ``etag``
    / ``last_modified``. Raises :class:`GtfsDownloadError` on any network or HTTP failure."""
    url = _as_url(url)
    headers = {"User-Agent": USER_AGENT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            sha256, size = _stream_to(response, dest_path, max_bytes=max_bytes, url=url)
            return FeedDownload(url=url, not_modified=False, path=dest_path, sha256=sha256, size_bytes=size,
                                etag=response.headers.get("ETag"),
                                last_modified=response.headers.get("Last-Modified"))
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return FeedDownload(url=url, not_modified=True, etag=exc.headers.get("ETag") or etag,
                                last_modified=exc.headers.get("Last-Modified") or last_modified)
        raise GtfsDownloadError(url, f"HTTP {exc.code} {exc.reason}", status=exc.code) from None
    except urllib.error.URLError as exc:
        raise GtfsDownloadError(url, str(exc.reason)) from None
    except TimeoutError:
        raise GtfsDownloadError(url, f"no response within {timeout_s:g} s") from None
    except (OSError, http.client.HTTPException) as exc:  # reset or cut mid-body, unreadable file://
        raise GtfsDownloadError(url, f"{type(exc).__name__}: {exc}") from None


def _stream_to(response, dest_path: Path, *, max_bytes: int, url: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(dest_path, "wb") as out:
        while chunk := response.read(_CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                raise GtfsDownloadError(url, f"response is larger than {max_bytes} bytes")
            digest.update(chunk)
            out.write(chunk)
    expected = response.headers.get("Content-Length")
    if expected is not None and expected.isdigit() and int(expected) != size:
        raise GtfsDownloadError(url, f"body ended after {size} of {expected} bytes")
    return digest.hexdigest(), size
