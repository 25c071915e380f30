"""A real, private RabbitMQ for tests (Debian's rabbitmq-server): one per test session, on free
loopback ports, with its own node name, database, logs, Erlang cookie and epmd, stopped by pid
at the end. Use the session fixture from a test module::

    from tests.rabbitmq import rabbitmq  # noqa: F401  (pytest fixture)

    def test_something(rabbitmq): ...  # rabbitmq.url is an amqp:// URL

When rabbitmq-server is not installed the test skips, naming it, and fails in CI
(``tests.servers.missing``); ``.ci/system-deps`` installs it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.servers import free_port, missing, stop_process_tree, wait_until

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # Debian's; /usr/sbin's wrapper would su to rabbitmq
CTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
EPMD = shutil.which("epmd") or "/usr/bin/epmd"
START_TIMEOUT_S = 90  # a loaded 2-core machine boots the node in 15-30 s
NOT_FOUND = f"rabbitmq-server ({SERVER}) not found (apt-get install rabbitmq-server)"


class RabbitServer:
    """rabbitmq-server and its own epmd, on free ports under ``workdir``."""

    def __init__(self, workdir: Path, *, consumer_timeout_ms: int | None = None):
        self.workdir = workdir
        self.port, self.epmd_port, self.dist_port = free_port(), free_port(), free_port()
        self.node = f"bktest{self.port}@localhost"
        self.consumer_timeout_ms = consumer_timeout_ms
        self.procs: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def env(self) -> dict[str, str]:
        w = self.workdir
        return {**os.environ, "HOME": str(w), "RABBITMQ_NODENAME": self.node, "RABBITMQ_MNESIA_BASE": str(w / "mnesia"),
                "RABBITMQ_LOG_BASE": str(w / "log"), "RABBITMQ_CONFIG_FILE": str(w / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(w / "advanced.config"),
                "RABBITMQ_CONF_ENV_FILE": str(w / "rabbitmq-env.conf"), "RABBITMQ_PID_FILE": str(w / "pid"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(w / "enabled_plugins"), "ERL_EPMD_PORT": str(self.epmd_port),
                "RABBITMQ_DIST_PORT": str(self.dist_port)}

    def start(self) -> "RabbitServer":
        if not SERVER.is_file():
            missing(NOT_FOUND)
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = [f"listeners.tcp.default = 127.0.0.1:{self.port}", "loopback_users = none"]
        if self.consumer_timeout_ms is not None:
            config.append(f"consumer_timeout = {self.consumer_timeout_ms}")
        (self.workdir / "rabbitmq.conf").write_text("\n".join(config) + "\n")
        (self.workdir / "enabled_plugins").write_text("[].\n")
        # Our own epmd, started first and in the foreground: rabbitmq-server would otherwise start a
        # detached one that outlives the session.
        self._spawn([EPMD, "-port", str(self.epmd_port), "-address", "127.0.0.1"], "epmd")
        wait_until(lambda: self._ctl_ok(["-port", str(self.epmd_port), "-names"], tool=EPMD), timeout_s=10,
                   what="epmd")
        self._spawn([str(SERVER)], "rabbitmq")
        wait_until(self._ready, timeout_s=START_TIMEOUT_S, interval_s=0.5, what="rabbitmq-server to accept")
        return self

    def _spawn(self, args: list[str], name: str) -> None:
        log = open(self.workdir / f"{name}.log", "wb")
        self.procs.append(subprocess.Popen(args, env=self.env, cwd=self.workdir, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True))

    def _ready(self) -> bool:
        server = self.procs[-1]
        if server.poll() is not None:
            raise AssertionError(f"rabbitmq-server exited {server.returncode}:\n"
                                 f"{(self.workdir / 'rabbitmq.log').read_text()[-3000:]}")
        return b"Starting broker... completed" in (self.workdir / "rabbitmq.log").read_bytes()

    def _ctl_ok(self, args: list[str], *, tool: str) -> bool:
        return subprocess.run([tool, *args], env=self.env, capture_output=True, timeout=30).returncode == 0

    def ctl(self, *args: str) -> str:
        """``rabbitmqctl`` on this node; its standard output."""
        done = subprocess.run([str(CTL), "-n", self.node, "-q", *args], env=self.env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, f"rabbitmqctl {' '.join(args)}: {done.stderr}"
        return done.stdout

    def messages(self) -> dict[str, int]:
        """Each queue's ready messages, as ``rabbitmqctl list_queues`` reports them."""
        lines = self.ctl("list_queues", "name", "messages_ready", "--no-table-headers").splitlines()
        return {name: int(count) for name, count in (line.split("\t") for line in lines if "\t" in line)}

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_process_tree(proc, timeout_s=30)


@pytest.fixture(scope="session")
def rabbitmq():
    """The session's RabbitMQ (started on first use)."""
    workdir = Path(tempfile.mkdtemp(prefix="beatkeeper-rabbitmq-"))
    server = RabbitServer(workdir)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
