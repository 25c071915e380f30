"""Shared fixtures: one private redis-server for the whole session, a clean database per test,
a real in-process Celery worker on the real app, and process spawning that always cleans up.

REDIS_URL and DATABASE_URL are pointed at the session's own servers before anything imports the
app's settings, whatever the environment says: the suite never touches a developer's data.
Set BEATKEEPER_TEST_REDIS_URL (an empty Redis) or BEATKEEPER_TEST_DATABASE_URL (an empty SQL
database) to use one of yours instead. The session's directory is removed at the end.

A test that cannot run for want of a server or tool (``tests.servers.missing``) skips locally and
is listed at the end of the run; with ``CI=true`` it fails. The count of such tests is written to
the file named by BEATKEEPER_TEST_MISSING_REPORT, for ``.ci/run``.

Under pytest-xdist (``make test`` runs two workers) each worker is a session of its own: its own
redis-server, data directory, SQLite file and Postgres. The controller runs no test and starts no
server; it alone hears every worker's reports, so it alone lists and writes the missing ones.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest
import redis

from tests.postgres import postgres_url  # noqa: F401  (session fixture: one private Postgres, started on use)
from tests.servers import MISSING, RedisServer, in_ci, stop_process_tree

ROOT = Path(__file__).resolve().parent.parent
_session_dir = Path(tempfile.mkdtemp(prefix="beatkeeper-tests-"))
_redis_server: RedisServer | None = None
_missing: dict[str, str] = {}  # test id -> the server or tool it lacked


def _xdist_controller(config) -> bool:
    """True in the process that hands tests to xdist workers (and runs none itself)."""
    distributing = getattr(config.option, "dist", "no") != "no" and bool(getattr(config.option, "tx", None))
    return distributing and not hasattr(config, "workerinput")


def _xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config):
    global _redis_server
    if _xdist_controller(config):
        shared = [name for name in ("BEATKEEPER_TEST_REDIS_URL", "BEATKEEPER_TEST_DATABASE_URL")
                  if os.environ.get(name)]
        if shared:  # each worker flushes and fills its servers: two workers cannot share one
            raise pytest.UsageError(f"{' and '.join(shared)}: one server for every xdist worker; "
                                    f"run in one process (make test TEST_WORKERS=0, or pytest -n 0)")
        return
    url = os.environ.get("BEATKEEPER_TEST_REDIS_URL")
    if not url:
        # A missing redis-server fails the run (never skips): CI must install it.
        _redis_server = RedisServer(_session_dir / "redis").start()
        url = _redis_server.url
    client = redis.Redis.from_url(url)
    if client.dbsize():
        raise pytest.UsageError(f"refusing to run tests against non-empty Redis at {url}")
    os.environ["REDIS_URL"] = url
    os.environ["BEATKEEPER_DATA_DIR"] = str(_session_dir / "data")
    os.environ["DATABASE_URL"] = _test_database_url()
    # The history schema exists before any worker writes to it, as the runner ensures in production.
    from monitoring.migrations import upgrade_database

    upgrade_database(os.environ["DATABASE_URL"])


def _test_database_url() -> str:
    """The session's own SQLite file, or BEATKEEPER_TEST_DATABASE_URL when it names an empty database."""
    url = os.environ.get("BEATKEEPER_TEST_DATABASE_URL")
    if not url:
        return f"sqlite:///{_session_dir / 'history.db'}"
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        tables = inspect(engine).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise pytest.UsageError(f"refusing to run tests against a non-empty database "
                                f"(BEATKEEPER_TEST_DATABASE_URL has tables: {', '.join(sorted(tables)[:5])})")
    return url


def pytest_unconfigure(config):
    _stop_session_servers()


def _stop_session_servers() -> None:
    if _redis_server is not None:
        _redis_server.kill()
    shutil.rmtree(_session_dir, ignore_errors=True)


#: Tests sharing an expensive stand-up, by path: each runs in one xdist worker. The container tests
#: share the images (a session fixture); the browser tests share a module-scoped stack.
ONE_WORKER_PATHS = ("tests/containers/", "tests/web/test_dashboard_browser.py")


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown to a pytest without it
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` (``make test``): every test on its own, but those under one of
    :data:`ONE_WORKER_PATHS` together. Done here by path because xdist 3.8 groups ``xdist_group``
    marks by renaming node ids, which pytest 9 ignores (the marks group nothing)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerPaths(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return next((path for path in ONE_WORKER_PATHS if nodeid.startswith(path)), nodeid)

    return OneWorkerPaths(config, log)


#: Tests that write into this checkout (the README's walk-through puts a user's files where the
#: README says): under xdist each runs alone, the other worker held between two tests, since the
#: other tests read the checkout (the user homes, the container test's copy of the project).
ALONE_PATHS = ("tests/readme/test_readme_walk_through.py",)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # outside pytest-timeout's clock: the wait is no test's
def pytest_runtest_protocol(item):
    if not _xdist_worker(item.config):
        yield
        return
    # one lock file per run: the workers' base temporary directories share their parent
    with open(Path(item.config.option.basetemp).parent / "checkout.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if item.nodeid.startswith(ALONE_PATHS) else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def pytest_runtest_logreport(report):
    if report.skipped or report.failed:
        reason = _missing_reason(report.longrepr)
        if reason:
            _missing.setdefault(report.nodeid, reason)


def _missing_reason(longrepr) -> str | None:
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr or "")
    at = text.find(MISSING)
    return text[at:].splitlines()[0] if at >= 0 else None


def pytest_terminal_summary(terminalreporter):
    if not _missing:
        return
    verdict = "failed (CI=true)" if in_ci() else "skipped"
    terminalreporter.write_sep("=", f"{len(_missing)} test(s) {verdict}: a server or tool they need is missing")
    for reason, count in Counter(_missing.values()).most_common():
        terminalreporter.write_line(f"{count} x {reason}")


@pytest.hookimpl(trylast=True)  # after the session fixtures' teardown
def pytest_sessionfinish(session):
    report = os.environ.get("BEATKEEPER_TEST_MISSING_REPORT")
    if report and not _xdist_worker(session.config):  # a worker knows only its own share
        lines = [f"{count} test(s): {reason}" for reason, count in Counter(_missing.values()).most_common()]
        Path(report).write_text("\n".join([str(len(_missing)), *lines]) + "\n")
    if _xdist_worker(session.config):  # xdist may end a worker once its session ends, before pytest_unconfigure
        _stop_session_servers()


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ["REDIS_URL"]


@pytest.fixture
def redis_client(redis_url) -> redis.Redis:
    """A client on a freshly flushed database."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def app():
    from tasks import app as celery_app

    celery_app.loader.import_default_modules()
    return celery_app


@pytest.fixture
def worker(app, redis_client):
    """A real Celery worker (celery.contrib.testing) on the real app, consuming both queues."""
    from celery.contrib.testing.worker import start_worker

    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False,
                      queues=["default", "singleton"], shutdown_timeout=30.0) as w:
        yield w


class Processes:
    """Starts subprocesses in their own session and stops every one of them by pid at teardown."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.started: list[subprocess.Popen] = []

    def start(self, args: list[str], *, name: str, env: dict[str, str | None] | None = None) -> subprocess.Popen:
        """Start ``args``; ``env`` overrides the environment (a None value removes a variable)."""
        log = open(self.workdir / f"{name}.log", "wb")
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.Popen(args, cwd=ROOT, env={k: v for k, v in full_env.items() if v is not None}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = self.workdir / f"{name}.log"
        self.started.append(proc)
        return proc

    def celery(self, *args: str, name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return self.start([sys.executable, "-m", "celery", "-A", "tasks", *args], name=name, env=env)

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            stop_process_tree(proc)


@pytest.fixture
def processes(tmp_path):
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()
    for proc in procs.started:
        assert proc.poll() is not None, f"process {proc.pid} survived teardown"
