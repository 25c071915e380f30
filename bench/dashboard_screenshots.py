"""Takes docs/dashboard-overview.png and docs/dashboard-entry.png: the dashboard (in process, on a
private redis-server and a fresh SQLite history with a day of made-up runs) in headless chromium.

    .venv/bin/python bench/dashboard_screenshots.py
"""
from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from monitoring.alerts import ActiveAlert, Alert, AlertStore, Severity  # noqa: E402
from monitoring.db import engine_for  # noqa: E402
from monitoring.history import HistoryStore, RunRecord  # noqa: E402
from monitoring.migrations import upgrade_database  # noqa: E402
from monitoring.pauses import PauseStore  # noqa: E402
from monitoring.rules.base import PlatformKeys  # noqa: E402
from monitoring.server import serve_in_thread  # noqa: E402
from monitoring.web.app import dashboard_app  # noqa: E402
from monitoring.web.sources import DashboardSources  # noqa: E402
from schedules.settings import ScheduleSettings  # noqa: E402
from schedules.validate import validate_schedule  # noqa: E402
from tests.servers import RedisServer  # noqa: E402

KEYS = PlatformKeys()
SCHEDULE = {
    "gtfs-refresh": {"task": "gtfs.refresh", "cron": "*/15 * * * *", "timezone": "Australia/Sydney", "queue": "etl"},
    "nightly-report": {"task": "reports.nightly", "cron": "30 2 * * *", "timezone": "Australia/Sydney",
                       "args": ["daily"]},
    "poll-vehicles": {"task": "etl.poll", "every": 60, "max_runs_per_hour": 120},
    "invoice-run": {"task": "billing.invoice", "cron": "0 9 * * mon-fri", "timezone": "Europe/London"},
    "cache-warm": {"task": "cache.warm", "every": 300},
    "partner-sync": {"task": "partner.sync", "cron": "*/10 * * * *", "timezone": "America/New_York"},
    "gift-draw": {"task": "gifts.draw", "at": "2026-12-20T18:00:00", "timezone": "Europe/Paris"},
}
PROFILE = {"gtfs-refresh": (900, 40, 0.0, 5), "nightly-report": (86400, 300, 0.0, 0),
           "poll-vehicles": (60, 2, 0.0, 90), "invoice-run": (86400, 20, 0.2, 0),
           "cache-warm": (300, 8, 0.0, 0), "partner-sync": (600, 15, 0.0, 2)}


def main() -> None:
    from playwright.sync_api import sync_playwright

    workdir = Path(tempfile.mkdtemp(prefix="dashboard-shots-"))
    server = RedisServer(workdir / "redis").start()
    http = None
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        now = datetime.now(timezone.utc).replace(microsecond=0)
        specs = validate_schedule(SCHEDULE, settings=ScheduleSettings(min_interval_s=1), registered_tasks=None,
                                  now=now).entries
        url = f"sqlite:///{workdir / 'history.db'}"
        upgrade_database(url)
        store = HistoryStore(engine_for(url), redis_client=client)
        rng = random.Random(3)
        rows = []
        for name, (period_s, took_s, fail_p, late_s) in PROFILE.items():
            for i in range(1, min(60, int(86400 / period_s) + 1)):
                fire = now - timedelta(seconds=period_s * i)
                status = "failure" if rng.random() < fail_p else "success"
                started = fire + timedelta(seconds=rng.uniform(0.05, 0.5) + (late_s if i < 4 else 0))
                rows.append(RunRecord(task_name=specs[name].task, task_id=f"{name}-{i:04d}", status=status, entry=name,
                                      fire_at=fire, started_at=started, hostname="worker-1",
                                      finished_at=started + timedelta(seconds=took_s * rng.uniform(0.7, 1.4)),
                                      error_type="TimeoutError" if status == "failure" else None,
                                      error_message="partner API did not answer in 30 s" if status == "failure" else None))
        store.write(rows)
        client.zadd(KEYS.redbeat_schedule_key, {KEYS.redbeat_prefix + n: 0 for n in specs})
        PauseStore(client).pause("cache-warm", now=now.timestamp(), until=now.timestamp() + 7200,
                                 reason="Redis migration", by="ops")
        alerts = AlertStore(client)
        alerts.put(ActiveAlert(Alert("run_failed", "invoice-run", Severity.WARNING,
                                     "invoice-run failed: TimeoutError"), since=now.timestamp() - 600,
                               notified_at=now.timestamp() - 600))
        alerts.flush()
        client.set(KEYS.lock_prefix + "gtfs.refresh", "t", px=60_000)
        client.hset(KEYS.lock_prefix + "gtfs.refresh" + KEYS.lock_meta_suffix, "holder",
                    json.dumps({"entry": "gtfs-refresh", "task_id": "gtfs-refresh-now", "hostname": "worker-1"}))
        app = dashboard_app(DashboardSources(client=client, specs=lambda: specs, history=store, keys=KEYS,
                                             flower_url="http://127.0.0.1:5555"))
        http = serve_in_thread(app)
        base = f"http://127.0.0.1:{http.server_port}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1600, "height": 700})
            page.goto(base + "/")
            page.screenshot(path=str(ROOT / "docs" / "dashboard-overview.png"), full_page=True)
            page.set_viewport_size({"width": 1300, "height": 900})
            page.goto(base + "/entry?name=partner-sync")
            page.screenshot(path=str(ROOT / "docs" / "dashboard-entry.png"), full_page=False)
            browser.close()
        print("wrote docs/dashboard-overview.png and docs/dashboard-entry.png")
    finally:
        if http is not None:
            http.shutdown()
            http.server_close()
        server.stop()
        time.sleep(0)


if __name__ == "__main__":
    main()
