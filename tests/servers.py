"""Real servers for the tests: a private redis-server per test session, started and stopped by pid."""
from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NoReturn

import pytest
import redis

#: How a test that cannot run for want of a server or tool says so; tests/conftest.py counts these.
MISSING = "missing server or tool:"


def in_ci() -> bool:
    """Whether this run is CI's (``CI=true``, as CI services set it): nothing may be missing there."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(what: str) -> NoReturn:
    """The calling test needs ``what`` (a server or tool, and how to install it), which is not here.
    Locally it skips, listed at the end of the run; in CI it fails, naming what is missing."""
    message = f"{MISSING} {what}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: required, not skipped)", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, *, timeout_s: float, interval_s: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


class RedisServer:
    """A redis-server on a free loopback port, in its own directory, append-only when asked."""

    def __init__(self, workdir: Path, *, port: int | None = None, appendonly: bool = False,
                 extra_args: tuple[str, ...] = ()):
        self.workdir = workdir
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None
        self.client_kwargs: dict = {}  # how start() reaches the server (a TLS server needs its CA)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no",
                "--logfile", str(self.workdir / "redis.log"), *self.extra_args]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2, **self.client_kwargs)
        wait_until(lambda: _pings(client), timeout_s=10, what=f"redis-server on port {self.port}")
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def stop_process_tree(proc: subprocess.Popen, *, timeout_s: float = 10) -> None:
    """Stop a process started with ``start_new_session=True`` and its children, by pid/process group."""
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie awaiting its parent counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def http_status(url: str, credentials: str | None = None, *, data: bytes | None = None,
                timeout_s: float = 10) -> int:
    """The HTTP status ``url`` answers (with basic auth ``user:password`` when given); 0 when nothing answers."""
    request = urllib.request.Request(url, data=data)
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0
