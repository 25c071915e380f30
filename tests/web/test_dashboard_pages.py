"""The dashboard's pages called as a WSGI app (no server) on real Redis and a real SQLite
history: one row per state, escaping of what user code writes, the JSON, badges and actions."""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from monitoring.alerts import ActiveAlert, Alert, AlertStore, Severity
from monitoring.events import read_events
from monitoring.pauses import PauseStore
from monitoring.rules.base import PlatformKeys
from monitoring.server import monitor_wsgi_app
from monitoring.web.actions import DashboardActions
from monitoring.web.app import dashboard_app
from monitoring.web.sources import DashboardSources
from tests.monitoring.monitor_fixtures import a_run, at, history, register_in_redbeat, specs_of, ts  # noqa: F401
from tests.monitoring.databases import sqlite_url  # noqa: F401
from tests.web.dashboard_fixtures import ROW_ENTRIES, SCRIPT, call, json_of

NOW_S = 3600  # the pages' clock: T0 + 1 h
KEYS = PlatformKeys()


def schedule() -> dict:
    entries = {name: {"task": "jobs.work", "every": 60} for name in ROW_ENTRIES}
    entries["nightly-ok"] = {"task": "jobs.work", "cron": "30 2 * * *", "timezone": "Australia/Sydney",
                             "args": [1], "queue": "batch"}
    entries[SCRIPT] = {"task": "jobs.work", "every": 60}
    return entries


@pytest.fixture
def specs():
    return specs_of(schedule())


@pytest.fixture
def dashboard(redis_client, history, specs):  # noqa: F811
    register_in_redbeat(redis_client, *specs)
    rows = [a_run("nightly-ok", 0), a_run("paused-one", 0), a_run("running-one", 0),
            a_run("late-one", 0, started_at=at(300), finished_at=at(301)),
            a_run("missed-one", 0), a_run("failing-one", 0, status="failure", error_type="ValueError",
                                          error_message="bad"),
            a_run("overlap-one", 0), a_run("overlap-one", 60, status="skipped_overlap", reason="still running",
                                           started_at=None),
            a_run("dead-one", 0, status="dead_lettered", reason="worker died", started_at=None),
            a_run(SCRIPT, 0, status="failure", error_type="RuntimeError", error_message=SCRIPT)]
    history.write(rows)
    PauseStore(redis_client).pause("paused-one", now=ts(NOW_S - 10), reason="maintenance <b>now</b>", by="ops")
    alerts = AlertStore(redis_client)
    alerts.put(ActiveAlert(Alert("missed_run", "missed-one", Severity.CRITICAL, "missed 12:05"),
                           since=ts(NOW_S - 60), notified_at=ts(NOW_S - 60)))
    alerts.put(ActiveAlert(Alert("run_failed", SCRIPT, Severity.WARNING, f"failed: {SCRIPT}"),
                           since=ts(NOW_S - 60), notified_at=ts(NOW_S - 60)))
    alerts.flush()
    lock = KEYS.lock_prefix + "jobs.work"
    redis_client.set(lock, "token", px=60_000)
    redis_client.hset(lock + KEYS.lock_meta_suffix, "holder", json.dumps({"entry": "running-one", "task_id": "t-1"}))
    sent = []
    actions = DashboardActions(client=redis_client, run_entry=lambda name, who: sent.append((name, who)) or "task-9",
                               resume_run=lambda run_id: f"resumed {run_id}",
                               requeue=lambda run_id, who: f"requeued {run_id}", clock=lambda: ts(NOW_S))
    sources = DashboardSources(client=redis_client, specs=lambda: specs, history=history, keys=KEYS,
                               flower_url="http://flower.local:5555", clock=lambda: ts(NOW_S))
    app = dashboard_app(sources, actions)
    app.sent = sent
    return app


def test_every_row_state_shows_on_the_overview_and_in_its_json(dashboard):
    data = json_of(dashboard, "/overview.json")
    states = {row["name"]: row["row_state"] for row in data["entries"]}
    assert {name: states[name] for name in ROW_ENTRIES} == ROW_ENTRIES
    status, _, body = call(dashboard, "/")
    assert status == 200
    html = body.decode()
    for name, state in ROW_ENTRIES.items():
        row = re.search(rf'<tr><td><a href="/entry\?name={name}">{name}</a></td><td><span class="s [^"]+">'
                        rf"([^<]+)</span>", html)
        assert row is not None and row.group(1) == state, name
    assert '<meta http-equiv="refresh"' in html and "<script" not in html.replace(SCRIPT, "")


def test_overview_row_has_next_fires_in_local_time_and_utc_dst_pause_and_budget(dashboard):
    rows = {row["name"]: row for row in json_of(dashboard, "/overview.json")["entries"]}
    nightly = rows["nightly-ok"]
    assert nightly["schedule"] and nightly["queue"] == "batch"
    assert nightly["next_fires"][0]["local"].startswith("2026-06-02T02:30:00+10:00")
    assert nightly["next_fires"][0]["utc"] == "2026-06-01T16:30:00+00:00"
    assert nightly["next_dst"]["effect"] in ("shifted", "fires_twice", "skipped")
    assert rows["late-one"]["lateness_s"] == pytest.approx(300)
    assert rows["paused-one"]["pause"] == {"name": "paused-one", "until": None, "reason": "maintenance <b>now</b>",
                                           "by": "ops"}
    assert rows["overlap-one"]["recent_runs"][0]["status"] == "skipped_overlap"


def test_overview_json_is_status_json_where_they_overlap(dashboard, redis_client, history, specs):  # noqa: F811
    from monitoring.status import gather_status

    data = json_of(dashboard, "/overview.json")
    report = gather_status(client=redis_client, specs=specs, now=at(NOW_S), history=history, keys=KEYS,
                           pauses={p.name: p.describe() for p in PauseStore(redis_client).list_pauses(now=ts(NOW_S))}
                           ).to_dict()
    for ours, theirs in zip(data["entries"], report["entries"]):
        assert {k: ours[k] for k in theirs} == theirs
    assert data["alerts"] == report["alerts"]
    assert [{**x, "ttl_s": None} for x in data["locks"]] == [{**x, "ttl_s": None} for x in report["locks"]]


def test_filters_by_state_queue_and_search(dashboard):
    assert [r["name"] for r in json_of(dashboard, "/overview.json", state="failing")["entries"]] == \
        sorted(["failing-one", SCRIPT])
    assert [r["name"] for r in json_of(dashboard, "/overview.json", queue="batch")["entries"]] == ["nightly-ok"]
    assert [r["name"] for r in json_of(dashboard, "/overview.json", search="DEAD")["entries"]] == ["dead-one"]
    _, _, body = call(dashboard, "/", query={"state": "paused"})
    assert "paused-one" in body.decode() and "nightly-ok" not in body.decode()


def test_a_script_in_an_entry_name_and_an_error_message_is_text(dashboard):
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    for path, query in (("/", {}), ("/entry", {"name": SCRIPT}), ("/alerts", {}), ("/confirm",
                        {"action": "pause", "target": SCRIPT})):
        status, headers, body = call(dashboard, path, query=query)
        assert status == 200, path
        assert SCRIPT not in body.decode() and escaped in body.decode(), path
        assert "default-src 'none'" in headers["Content-Security-Policy"]
    _, _, body = call(dashboard, "/badge.svg", query={"name": SCRIPT})
    assert b"<script>" not in body and b"&lt;script&gt;" in body


def test_entry_page_history_paging_filters_plot_dst_policy_and_flower_links(dashboard, history):  # noqa: F811
    history.write([a_run("nightly-ok", 60 * i, took_s=1 + i % 3) for i in range(1, 61)])
    data = json_of(dashboard, "/entry.json", name="nightly-ok", page="2")
    assert data["history"]["total"] == 61 and len(data["history"]["runs"]) == 11 and data["history"]["page"] == 2
    assert data["history"]["runs"][0]["flower_url"].startswith("http://flower.local:5555/task/nightly-ok-")
    assert {row["kind"] for row in data["dst"]} and all("nightly-ok" in row["effects"] for row in data["dst"])
    assert data["args"] == [1] and "overlap" in data["policy"] and "catchup" in data["policy"]
    only = json_of(dashboard, "/entry.json", name="failing-one", status="failure")
    assert [r["status"] for r in only["history"]["runs"]] == ["failure"]
    status, _, body = call(dashboard, "/entry", query={"name": "nightly-ok"})
    html = body.decode()
    assert status == 200 and "<svg" in html and "<circle" in html and "page 1 of 2" in html
    assert 'href="http://flower.local:5555/task/' in html
    assert call(dashboard, "/entry", query={"name": "nope"})[0] == 404


def test_badges_say_each_entry_state(dashboard):
    status, headers, body = call(dashboard, "/badge.svg", query={"name": "failing-one"})
    assert status == 200 and headers["Content-Type"] == "image/svg+xml" and b">failing</text>" in body
    assert b">paused</text>" in call(dashboard, "/badge.svg", query={"name": "paused-one"})[2]
    assert call(dashboard, "/badge.svg", query={"name": "nope"})[0] == 404


def test_platform_and_alerts_pages(dashboard, redis_client):
    redis_client.lpush("beatkeeper:dead_letters", json.dumps({"run_id": "r-1", "task": "jobs.work", "entry": "dead-one",
                                                              "task_id": "t-9", "args": [SCRIPT], "kwargs": {},
                                                              "deaths": 3, "at": ts(NOW_S)}))
    data = json_of(dashboard, "/platform.json")
    assert data["locks"][0]["holder"]["entry"] == "running-one" and data["dead_letters"][0]["run_id"] == "r-1"
    _, _, body = call(dashboard, "/platform")
    assert b"r-1" in body and b"requeue" in body and SCRIPT.encode() not in body
    alerts = json_of(dashboard, "/alerts.json")
    assert [(a["rule"], a["subject"]) for a in alerts["firing"]] == [("missed_run", "missed-one"), ("run_failed", SCRIPT)]
    assert b"missed 12:05" in call(dashboard, "/alerts")[2]


def test_actions_need_the_csrf_token_and_are_recorded_with_who(dashboard, redis_client):
    form = {"action": "pause", "target": "nightly-ok", "reason": "deploy", "until": "2h"}
    status, _, body = call(dashboard, "/action", form=form)
    assert status == 403 and PauseStore(redis_client).active_pause(["nightly-ok"], now=ts(NOW_S)) is None
    token = re.search(r'name="csrf" value="([0-9a-f]+)"',
                      call(dashboard, "/confirm", query={"action": "pause", "target": "nightly-ok"})[2].decode()).group(1)
    assert call(dashboard, "/action", form={**form, "csrf": token}, user="eve:other")[0] == 403  # another user's token
    status, _, body = call(dashboard, "/action", form={**form, "csrf": token})
    assert status == 200, body
    pause = PauseStore(redis_client).active_pause(["nightly-ok"], now=ts(NOW_S))
    assert pause.by == "ops" and pause.reason == "deploy" and pause.until == pytest.approx(ts(NOW_S) + 7200)
    assert call(dashboard, "/action", form={"action": "resume", "target": "nightly-ok", "csrf": token})[0] == 200
    assert call(dashboard, "/action", form={"action": "resume", "target": "nightly-ok", "csrf": token})[0] == 409
    assert call(dashboard, "/action", form={"action": "run_now", "target": "nightly-ok", "csrf": token})[0] == 200
    assert dashboard.sent == [("nightly-ok", "ops")]
    events = [(e.data["action"], e.subject, e.data["who"]) for e in read_events(redis_client, kind="dashboard_action")]
    assert events == [("pause", "nightly-ok", "ops"), ("resume", "nightly-ok", "ops"), ("run_now", "nightly-ok", "ops")]
    assert call(dashboard, "/action", query={}, form=None)[0] == 405


def test_behind_the_monitors_credentials_every_dashboard_path_answers_401(dashboard, redis_client):
    class FakeMonitor:  # the dashboard paths never reach the monitor
        pass

    from prometheus_client import CollectorRegistry

    app = monitor_wsgi_app(FakeMonitor(), registry=CollectorRegistry(), ping_client=redis_client,
                           basic_auth="ops:s3cret", dashboard=dashboard)
    for path in ("/", "/overview.json", "/entry", "/entry.json", "/badge.svg", "/platform", "/platform.json",
                 "/alerts", "/alerts.json", "/confirm", "/action", "/metrics"):
        assert call(app, path, user=None)[0] == 401, path
        assert call(app, path, user="ops:wrong")[0] == 401, path
    assert call(app, "/", user="ops:s3cret")[0] == 200
    assert call(monitor_wsgi_app(FakeMonitor(), registry=CollectorRegistry(), ping_client=redis_client,
                                 basic_auth="ops:s3cret", metrics_open=True), "/metrics", user=None)[0] == 200
