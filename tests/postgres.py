"""A real, private Postgres for tests: ``initdb`` + ``pg_ctl start`` on a free loopback port in a
temporary directory, stopped (and its directory removed) at the end of the session.

One server per test session, started on first use and stopped when the session ends.
Use the session fixture from a test module (or a conftest)::

    from tests.postgres import postgres_url  # noqa: F401  (pytest fixture)

    def test_something(postgres_url): ...

or, for a new empty database per test on that same server, ``fresh_database_url(request)``.

The server binaries are found under ``/usr/lib/postgresql/*/bin`` (Debian's layout) or on PATH;
``BEATKEEPER_TEST_POSTGRES_BIN`` names their directory instead (empty: as if not installed).
When they are missing a test skips, naming them, and fails in CI (``tests.servers.missing``).
Postgres refuses to run as root: as root, the server runs as the ``postgres`` user (or
``nobody``) through ``runuser``.
"""
from __future__ import annotations

import contextlib
import glob
import os
import uuid
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.servers import free_port, missing

_BIN_GLOB = "/usr/lib/postgresql/*/bin"
BIN_ENV = "BEATKEEPER_TEST_POSTGRES_BIN"  # the server binaries' directory, overriding the search
NOT_FOUND = (f"PostgreSQL server binaries (initdb, pg_ctl) not found under {_BIN_GLOB}, on PATH or in "
             f"${BIN_ENV} (apt-get install postgresql)")


def postgres_bin_dir() -> Path | None:
    """The Postgres server bin directory: ``$BEATKEEPER_TEST_POSTGRES_BIN`` when set, else the newest
    installed under /usr/lib/postgresql, else initdb's on PATH; None when there is none."""
    if BIN_ENV in os.environ:
        candidates = [Path(os.environ[BIN_ENV])] if os.environ[BIN_ENV] else []
    else:
        on_path = shutil.which("initdb")
        candidates = [Path(d) for d in glob.glob(_BIN_GLOB)] + ([Path(on_path).resolve().parent] if on_path else [])
    found = [d for d in candidates if (d / "initdb").is_file() and (d / "pg_ctl").is_file()]
    return max(found, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0) if found else None


def require_postgres_bin_dir() -> Path:
    """The server bin directory; the calling test skips (fails in CI) when there is none."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        missing(NOT_FOUND)
    return bin_dir


class PostgresServer:
    """One throwaway cluster: trust auth, no fsync, loopback only, socket in its own directory."""

    def __init__(self, bin_dir: Path, *, port: int | None = None):
        self.bin_dir = bin_dir
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="beatkeeper-pg-"))
        self.data_dir = self.root / "data"
        self.run_as = _unprivileged_user() if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> "PostgresServer":
        try:
            if self.run_as:
                os.chmod(self.root, 0o700)
                shutil.chown(self.root, user=self.run_as)
            self._run(str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                      "-E", "UTF8", "--no-sync", "--no-instructions")
            options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off")
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-o", options,
                      "-l", str(self.root / "postgres.log"), "-w", "-t", "30", "start")
        except BaseException:
            with contextlib.suppress(Exception):  # the start's own error is the one to report
                self.stop()  # a server that did not come up leaves neither a process nor its directory
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        return self

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:1])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run Postgres as")


_shared: PostgresServer | None = None


def shared_server(config: pytest.Config) -> PostgresServer:
    """The session's server, started on first use (stopped when the session ends); skips the
    calling test (fails it in CI) when the Postgres binaries are missing."""
    global _shared
    if _shared is None:
        _shared = PostgresServer(require_postgres_bin_dir()).start()
        config.add_cleanup(_stop_shared)
    return _shared


def _stop_shared() -> None:
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None


@pytest.fixture(scope="session")
def postgres_url(request) -> str:
    """The SQLAlchemy URL of the session's private Postgres (its ``postgres`` database)."""
    return shared_server(request.config).url


def fresh_database_url(request) -> str:
    """The URL of a new, empty database on the session's Postgres (call it from a fixture)."""
    from sqlalchemy import create_engine, text

    server = shared_server(request.config)
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return server.url.rsplit("/", 1)[0] + "/" + name
