"""Step 4 of the GTFS pipeline, publish: put the export where the apps fetch it, atomically.

A published version is two objects under the target:

* ``gtfs-<sha256[:16]>.sqlite``: the export, named by its content. A name no manifest points
  to is invisible to apps, so uploading it is harmless until the commit.
* ``manifest.json``: the commit. Apps read it first, then fetch the file it names.
  ``{"format", "version", "sha256", "file", "size_bytes", "schema_version", "feed_sha256",
  "created_at"}``; ``version`` goes up by one per published change.

Targets: a directory (a path or ``file://`` URL; each object is written under a temporary
name and moved into place with ``os.replace``) or an ``http(s)://`` base URL taking ``PUT``
and ``GET`` of ``<base>/<object>`` (a single-object PUT is atomic on object stores and CDN
origins). The data file always goes first, the manifest last: a failure between the two
leaves the previous manifest, so apps keep the previous version. Publishing an export whose
sha256 the manifest already names writes nothing and returns ``"unchanged"``.
Older data files are left in place (an app may be mid-download); pruning is a retention job.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from examples.transit.gtfs.errors import GtfsPublishError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "beatkeeper-gtfs-export/1"
DEFAULT_TIMEOUT_S = 60.0  # seconds without progress on one HTTP request


@dataclass(frozen=True)
class PublishResult:
    """``status`` is ``"published"`` or ``"unchanged"``; ``manifest`` is the manifest now live."""

    status: str
    checksum: str
    version: int
    target: str
    manifest: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def publish_export(*, export_path: str | Path, target: str, now: datetime | None = None,
                   timeout_s: float = DEFAULT_TIMEOUT_S) -> PublishResult:
    """Publish the export file at ``export_path`` to ``target`` unless it is already live."""
    export_path = Path(export_path)
    checksum, size = _sha256(export_path)
    schema_version, feed_sha256 = _export_identity(export_path)
    store = _HttpTarget(target, timeout_s=timeout_s) if target.startswith(("http://", "https://")) \
        else _DirectoryTarget(target)
    current = store.read_manifest()
    if current is not None and current.get("sha256") == checksum:
        return PublishResult(status="unchanged", checksum=checksum, version=current["version"], target=target,
                             manifest=current)
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": (current["version"] + 1) if current else 1,
        "sha256": checksum,
        "file": f"gtfs-{checksum[:16]}.sqlite",
        "size_bytes": size,
        "schema_version": schema_version,
        "feed_sha256": feed_sha256,
        "created_at": (now or datetime.now(timezone.utc)).isoformat(),
    }
    store.put_file(manifest["file"], export_path)
    store.put_bytes(MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n")
    return PublishResult(status="published", checksum=checksum, version=manifest["version"], target=target,
                         manifest=manifest)


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _export_identity(path: Path) -> tuple[int, str | None]:
    """The export's schema version and feed checksum, read without modifying the file."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        row = conn.execute("SELECT value FROM meta WHERE key = 'feed_sha256'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise GtfsPublishError(str(path), f"not an export file ({exc})") from None
    finally:
        conn.close()
    return version, row and row[0]


class _DirectoryTarget:
    def __init__(self, target: str):
        parsed = urllib.parse.urlparse(target)
        self.target = target
        self.directory = Path(urllib.request.url2pathname(parsed.path) if parsed.scheme == "file" else target)

    def read_manifest(self) -> dict | None:
        path = self.directory / MANIFEST_NAME
        if not path.exists():
            return None
        return _parse_manifest(path.read_bytes(), self.target)

    def put_file(self, name: str, source: Path) -> None:
        def copy(out) -> None:
            with open(source, "rb") as handle:
                while chunk := handle.read(1024 * 1024):
                    out.write(chunk)
        self._write_atomically(name, copy)

    def put_bytes(self, name: str, data: bytes) -> None:
        self._write_atomically(name, lambda out: out.write(data))

    def _write_atomically(self, name: str, write) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.directory / f".{name}.tmp-{os.getpid()}"
            with open(tmp, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.directory / name)
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)  # the rename itself survives a crash
            finally:
                os.close(fd)
        except OSError as exc:
            raise GtfsPublishError(self.target, f"writing {name}: {exc}") from None


class _HttpTarget:
    def __init__(self, target: str, *, timeout_s: float):
        self.target = target
        self.base = target.rstrip("/") + "/"
        self.timeout_s = timeout_s

    def read_manifest(self) -> dict | None:
        try:
            with urllib.request.urlopen(self.base + MANIFEST_NAME, timeout=self.timeout_s) as response:
                return _parse_manifest(response.read(), self.target)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise GtfsPublishError(self.target, f"GET {MANIFEST_NAME}: HTTP {exc.code}", status=exc.code) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise GtfsPublishError(self.target, f"GET {MANIFEST_NAME}: {exc}") from None

    def put_file(self, name: str, source: Path) -> None:
        with open(source, "rb") as body:
            self._put(name, body, size=source.stat().st_size, content_type="application/vnd.sqlite3")

    def put_bytes(self, name: str, data: bytes) -> None:
        self._put(name, data, size=len(data), content_type="application/json")

    def _put(self, name: str, body, *, size: int, content_type: str) -> None:
        request = urllib.request.Request(self.base + name, data=body, method="PUT", headers={
            "Content-Type": content_type, "Content-Length": str(size)})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise GtfsPublishError(self.target, f"PUT {name}: HTTP {exc.code}", status=exc.code) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise GtfsPublishError(self.target, f"PUT {name}: {exc}") from None


def _parse_manifest(data: bytes, target: str) -> dict:
    try:
        manifest = json.loads(data)
        int(manifest["version"])
        return manifest
    except (ValueError, KeyError, TypeError):
        raise GtfsPublishError(target, f"the live {MANIFEST_NAME} is unreadable; fix or remove it by hand") from None
