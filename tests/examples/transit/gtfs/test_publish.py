"""Publish: data file first, manifest last; the same checksum twice publishes nothing."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import timedelta

import pytest

from examples.transit.gtfs import MANIFEST_NAME, GtfsPublishError, publish_export
from tests.examples.transit.gtfs.feedgen import NOW


def make_export(path, *, feed_sha256: str, schema_version: int = 1):
    """A minimal file shaped like an export (publish reads only user_version and meta)."""
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {schema_version}")
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('feed_sha256', ?)", (feed_sha256,))
    conn.close()
    return path


def sha256_of(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def export_v1(tmp_path):
    return make_export(tmp_path / "v1.sqlite", feed_sha256="a" * 64)


@pytest.fixture
def export_v2(tmp_path):
    return make_export(tmp_path / "v2.sqlite", feed_sha256="b" * 64)


def test_directory_publish_writes_file_then_manifest(tmp_path, export_v1):
    target = tmp_path / "cdn"
    result = publish_export(export_path=export_v1, target=str(target), now=NOW)
    manifest = json.loads((target / MANIFEST_NAME).read_text())
    assert result.status == "published" and result.manifest == manifest
    assert manifest == {"format": "beatkeeper-gtfs-export/1", "version": 1, "sha256": sha256_of(export_v1),
                        "file": f"gtfs-{sha256_of(export_v1)[:16]}.sqlite", "size_bytes": export_v1.stat().st_size,
                        "schema_version": 1, "feed_sha256": "a" * 64, "created_at": NOW.isoformat()}
    assert (target / manifest["file"]).read_bytes() == export_v1.read_bytes()
    assert sorted(p.name for p in target.iterdir()) == sorted([MANIFEST_NAME, manifest["file"]])


def test_same_checksum_again_publishes_nothing(tmp_path, export_v1):
    target = tmp_path / "cdn"
    publish_export(export_path=export_v1, target=str(target), now=NOW)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in target.iterdir()}
    again = publish_export(export_path=export_v1, target=f"file://{target}", now=NOW + timedelta(days=1))
    assert again.status == "unchanged" and again.version == 1
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in target.iterdir()} == before


def test_new_export_is_the_next_version_and_old_file_stays(tmp_path, export_v1, export_v2):
    target = tmp_path / "cdn"
    first = publish_export(export_path=export_v1, target=str(target), now=NOW)
    second = publish_export(export_path=export_v2, target=str(target), now=NOW)
    assert (second.status, second.version) == ("published", 2)
    assert json.loads((target / MANIFEST_NAME).read_text())["sha256"] == sha256_of(export_v2)
    assert (target / first.manifest["file"]).exists()  # an app may still be downloading it


def test_failed_file_write_keeps_the_previous_version(tmp_path, export_v1, export_v2):
    target = tmp_path / "cdn"
    publish_export(export_path=export_v1, target=str(target), now=NOW)
    manifest = (target / MANIFEST_NAME).read_bytes()
    (target / f"gtfs-{sha256_of(export_v2)[:16]}.sqlite").mkdir()  # the rename onto it must fail
    with pytest.raises(GtfsPublishError, match="writing gtfs-"):
        publish_export(export_path=export_v2, target=str(target), now=NOW)
    assert (target / MANIFEST_NAME).read_bytes() == manifest


def test_http_publish_puts_file_then_manifest(put_receiver, export_v1):
    result = publish_export(export_path=export_v1, target=put_receiver.base_url + "/gtfs/", now=NOW)
    data_name = f"gtfs/gtfs-{sha256_of(export_v1)[:16]}.sqlite"
    assert put_receiver.puts() == [data_name, "gtfs/manifest.json"]
    assert put_receiver.objects[data_name] == export_v1.read_bytes()
    assert json.loads(put_receiver.objects["gtfs/manifest.json"]) == result.manifest


def test_http_same_checksum_only_reads_the_manifest(put_receiver, export_v1, export_v2):
    publish_export(export_path=export_v1, target=put_receiver.base_url, now=NOW)
    again = publish_export(export_path=export_v1, target=put_receiver.base_url, now=NOW)
    assert again.status == "unchanged" and len(put_receiver.puts()) == 2
    newer = publish_export(export_path=export_v2, target=put_receiver.base_url, now=NOW)
    assert newer.version == 2 and len(put_receiver.puts()) == 4


def test_http_refused_manifest_keeps_the_previous_version(put_receiver, export_v1, export_v2):
    publish_export(export_path=export_v1, target=put_receiver.base_url, now=NOW)
    live = put_receiver.objects["manifest.json"]
    put_receiver.refuse_puts.add("manifest.json")
    with pytest.raises(GtfsPublishError) as caught:
        publish_export(export_path=export_v2, target=put_receiver.base_url, now=NOW)
    assert caught.value.status == 503 and "PUT manifest.json: HTTP 503" in str(caught.value)
    assert put_receiver.objects["manifest.json"] == live


def test_unreadable_live_manifest_is_not_overwritten(tmp_path, export_v1):
    target = tmp_path / "cdn"
    target.mkdir()
    (target / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(GtfsPublishError, match="manifest.json is unreadable"):
        publish_export(export_path=export_v1, target=str(target), now=NOW)
    assert (target / MANIFEST_NAME).read_text() == "{not json"


def test_a_file_that_is_not_an_export_is_refused(tmp_path):
    bogus = tmp_path / "bogus.sqlite"
    bogus.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(GtfsPublishError, match="not an export file"):
        publish_export(export_path=bogus, target=str(tmp_path / "cdn"), now=NOW)
    assert not (tmp_path / "cdn").exists()
