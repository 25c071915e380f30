"""The dashboard in a real browser (Playwright driving Debian's chromium) against a real
monitor, beat and worker: the overview lists the entries with their next fires; pausing from
the page makes the next run skipped_paused and resuming restores it; run-now executes the
entry with its arguments and its row shows it; without credentials every page answers 401;
a form posted without the CSRF token is refused."""
from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis

from monitoring.pauses import PauseStore
from tests.conftest import Processes
from tests.monitoring.databases import upgraded
from tests.servers import free_port, http_status, missing, wait_until
from tests.web.dashboard_tasks import CALLS_KEY

pytestmark = pytest.mark.process
CHROMIUM = Path(os.environ.get("BEATKEEPER_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
USER, PASSWORD = "ops", "s3cret-for-tests"
START_S = 90
RUN_S = 60  # generous: two cores shared by many processes
SCHEDULE = {"tick": {"task": "tests.dashboard.record", "every": 2, "args": ["tick"], "max_runs_per_hour": 4000},
            "by-hand": {"task": "tests.dashboard.record", "cron": "0 3 1 1 *", "timezone": "Europe/Paris",
                        "args": ["by-hand"], "kwargs": {"n": 7}}}
PAGES = ("/", "/overview.json", "/entry?name=tick", "/entry.json?name=tick", "/badge.svg?name=tick", "/platform",
         "/platform.json", "/alerts", "/alerts.json", "/confirm?action=pause&target=tick", "/metrics")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        missing("chromium (apt-get install chromium; .ci/system-deps installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_url):
    """A real worker, beat and ``beatkeeper monitor`` on the session's Redis and a fresh SQLite history."""
    workdir = tmp_path_factory.mktemp("dashboard")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    schedule = workdir / "schedule.json"
    schedule.write_text(json.dumps(SCHEDULE))
    port = free_port()
    env = {"BEATKEEPER_SCHEDULE": str(schedule), "BEATKEEPER_TASK_MODULES": "tests.web.dashboard_tasks",
           "DATABASE_URL": upgraded(f"sqlite:///{workdir / 'history.db'}"), "BEATKEEPER_MIN_INTERVAL": "1",
           "BEATKEEPER_LOOP_INTERVAL": "1", "BEATKEEPER_MONITOR_BASIC_AUTH": f"{USER}:{PASSWORD}",
           "BEATKEEPER_MONITOR_PORT": str(port), "BEATKEEPER_MONITOR_INTERVAL": "1",
           "BEATKEEPER_MONITOR_HOST": None, "BEATKEEPER_DATA_DIR": str(workdir)}
    procs = Processes(workdir)
    try:
        procs.celery("worker", "--loglevel=INFO", "-Q", "default", "-c", "1", "-P", "solo", name="worker", env=env)
        procs.celery("beat", "--loglevel=INFO", name="beat", env=env)
        monitor = procs.start([sys.executable, "-m", "tasks.cli", "monitor"], name="monitor", env=env)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: monitor.poll() is not None or _status(f"{base}/healthz", auth=False) == 200,
                   timeout_s=START_S, interval_s=0.3, what="the monitor")
        assert monitor.poll() is None, monitor.log_path.read_text()[-3000:]
        yield base, client
    finally:
        procs.stop_all()
        client.close()


def _status(url: str, *, auth: bool = True, data: bytes | None = None) -> int:
    return http_status(url, f"{USER}:{PASSWORD}" if auth else None, data=data)


def _json(base: str, path: str) -> dict:
    request = urllib.request.Request(base + path)
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _runs(base: str, entry: str, status: str) -> list[dict]:
    return _json(base, f"/entry.json?name={entry}&status={status}")["history"]["runs"]


@pytest.fixture
def page(browser, stack):
    context = browser.new_context(http_credentials={"username": USER, "password": PASSWORD})
    yield context.new_page()
    context.close()


def _row(page, entry: str):
    return page.locator("#entries tbody tr").filter(has=page.locator(f'a[href="/entry?name={entry}"]'))


def test_the_overview_lists_every_entry_with_its_next_fires(page, stack):
    base, _ = stack
    page.goto(base + "/")
    for name in SCHEDULE:
        assert _row(page, name).count() == 1, name
    by_hand = _row(page, "by-hand").inner_text()
    year = datetime.now(timezone.utc).year + 1
    assert f"{year}-01-01T03:00:00+01:00" in by_hand and f"{year}-01-01 02:00:00Z" in by_hand
    assert page.locator('meta[http-equiv="refresh"]').count() == 1


def test_pausing_from_the_page_skips_the_next_run_and_resuming_restores_it(page, stack):
    base, client = stack
    wait_until(lambda: _runs(base, "tick", "success"), timeout_s=START_S, interval_s=0.5, what="tick's first run")
    page.goto(base + "/")
    _row(page, "tick").get_by_role("link", name="pause").click()
    page.fill("#reason", "browser test")
    page.click("#confirm")
    assert "paused by ops" in page.inner_text("#result")
    paused_at = time.time()
    skipped = wait_until(lambda: [r for r in _runs(base, "tick", "skipped_paused")
                                  if datetime.fromisoformat(r["fire_at"]).timestamp() > paused_at],
                         timeout_s=RUN_S, interval_s=0.5, what="a skipped_paused run of tick")
    assert skipped
    page.goto(base + "/")
    assert "paused" in _row(page, "tick").inner_text() and "browser test" in _row(page, "tick").inner_text()

    _row(page, "tick").get_by_role("link", name="resume").click()
    page.click("#confirm")
    assert "resumed by ops" in page.inner_text("#result")
    resumed_at = time.time()
    wait_until(lambda: [r for r in _runs(base, "tick", "success")
                        if datetime.fromisoformat(r["started_at"]).timestamp() > resumed_at],
               timeout_s=RUN_S, interval_s=0.5, what="a successful run of tick after resuming")
    assert PauseStore(client).active_pause(["tick"], now=time.time()) is None


def test_run_now_executes_the_entry_with_its_arguments_and_its_row_shows_it(page, stack):
    base, client = stack
    page.goto(base + "/")
    assert "never ran" in _row(page, "by-hand").inner_text()
    _row(page, "by-hand").get_by_role("link", name="run now").click()
    page.click("#confirm")
    assert "sent now as task" in page.inner_text("#result")
    wait_until(lambda: json.dumps(["by-hand", 7]) in client.lrange(CALLS_KEY, 0, -1), timeout_s=RUN_S,
               interval_s=0.3, what="the by-hand run with its arguments")
    wait_until(lambda: _runs(base, "by-hand", "success"), timeout_s=RUN_S, interval_s=0.5,
               what="the by-hand run in the history")
    page.goto(base + "/")
    row = _row(page, "by-hand").inner_text()
    assert "success" in row and "never ran" not in row


def test_without_credentials_every_page_answers_401(browser, stack):
    base, _ = stack
    context = browser.new_context()
    try:
        for path in PAGES:
            assert context.request.get(base + path).status == 401, path
        assert context.request.get(base + "/healthz").status == 200  # the probes answer anyone
        assert context.request.get(base + "/readyz").status in (200, 503)
    finally:
        context.close()


def test_a_form_post_without_the_csrf_token_is_refused(page, stack):
    base, client = stack
    response = page.request.post(base + "/action", form={"action": "pause", "target": "tick", "reason": "forged"})
    assert response.status == 403 and "CSRF" in response.text()
    assert PauseStore(client).active_pause(["tick"], now=time.time()) is None
