"""Redis over TLS only (``--port 0 --tls-port``, a certificate made here with trustme): beat, a
worker, the monitor and ``beatkeeper status`` run the heartbeat and a guarded entry on a
``rediss://`` URL as a provider prints it, with the CA and a client certificate from the settings
(tasks/infra/redis_tls.py); a certificate from another CA is refused in one line."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import trustme

from monitoring.heartbeats import HEARTBEATS_KEY, last_heartbeat
from tasks.infra.redis_tls import client_ssl_kwargs
from tests.tasks.beat import ledger_tasks as lt
from tests.process.test_beat_faults import executed, platform_env
from tests.servers import RedisServer, free_port, missing, wait_until

pytestmark = pytest.mark.process

START_TIMEOUT_S = 60
CLI_TIMEOUT_S = 60
BACKEND_ROUND_TRIP = ("from tasks import app; app.backend.store_result('tls-probe', 42, 'SUCCESS'); "
                      "print(app.AsyncResult('tls-probe').get(timeout=10))")


class TlsRedisServer(RedisServer):
    """A redis-server answering TLS only, with a server certificate for 127.0.0.1 signed by ``ca``."""

    def __init__(self, workdir: Path, files: dict[str, Path]):
        port = free_port()
        # "--port 0", given after RedisServer's "--port", closes the plain-text port.
        super().__init__(workdir, port=port, extra_args=(
            "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(files["cert"]),
            "--tls-key-file", str(files["key"]), "--tls-ca-cert-file", str(files["ca"]), "--tls-auth-clients", "yes"))
        # Clients must show a certificate of the same CA (mutual TLS), as some providers require.
        self.client_kwargs = {"ssl_ca_certs": str(files["ca"]), "ssl_certfile": str(files["client-cert"]),
                              "ssl_keyfile": str(files["client-key"])}

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"


def _refuses_tls(server: TlsRedisServer) -> bool:
    """Whether this redis-server build rejects the TLS directives (it says so on stderr and exits)."""
    try:
        said = subprocess.run([shutil.which("redis-server"), *server.extra_args, "--dir", str(server.workdir)],
                              capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:  # it ran: TLS is supported, something else failed
        return False
    return said.returncode != 0 and "tls" in (said.stdout + said.stderr).lower()


@pytest.fixture
def tls_redis(tmp_path):
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("beatkeeper-client@example.com")
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key", "client-cert", "client-key", "other-ca")}
    ca.cert_pem.write_to_path(str(files["ca"]))
    issued.cert_chain_pems[0].write_to_path(str(files["cert"]))
    issued.private_key_pem.write_to_path(str(files["key"]))
    client.cert_chain_pems[0].write_to_path(str(files["client-cert"]))
    client.private_key_pem.write_to_path(str(files["client-key"]))
    trustme.CA().cert_pem.write_to_path(str(files["other-ca"]))
    server = TlsRedisServer(tmp_path / "redis", files)
    try:
        server.start()
    except AssertionError:
        server.kill()
        if _refuses_tls(server):
            missing("redis-server built with TLS (Debian's redis-server package is)")
        raise
    yield server, files
    server.kill()


def _tls_env(files: dict[str, Path], ca: str = "ca") -> dict[str, str]:
    return {"BEATKEEPER_REDIS_CA_FILE": str(files[ca]), "BEATKEEPER_REDIS_CERT_FILE": str(files["client-cert"]),
            "BEATKEEPER_REDIS_KEY_FILE": str(files["client-key"])}


def _status(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tasks.cli", "status"], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=CLI_TIMEOUT_S)


def test_beat_a_worker_the_monitor_and_status_run_over_mutual_tls_from_the_settings(processes, tls_redis, tmp_path):
    server, files = tls_redis
    schedule = {"fast-heartbeat": {"task": "beatkeeper.heartbeat", "every": 1, "expires": 5},
                "guarded": {"task": lt.record.name, "every": 1, "overlap": "skip", "lock_ttl": 30}}
    env = {**platform_env(tmp_path, schedule, redis_url=server.url), "CELERY_RESULT_BACKEND": server.url,
           **_tls_env(files), "BEATKEEPER_MONITOR_PORT": str(free_port()),
           "BEATKEEPER_MONITOR_INTERVAL": "0.5"}
    client = redis.Redis.from_url(server.url, decode_responses=True, **client_ssl_kwargs(server.url, env))
    assert client.config_get("port")["port"] == "0"  # no plain-text port: everything below is TLS
    with pytest.raises(redis.ConnectionError):  # and no client without the certificate settings
        redis.Redis.from_url(server.url, ssl_ca_certs=str(files["ca"]), socket_timeout=5).ping()

    worker = processes.celery("worker", "--loglevel=INFO", "-Q", "default", "-c", "1", "-P", "solo",
                              name="worker", env=env)
    beat = processes.celery("beat", "--loglevel=INFO", name="beat", env=env)
    monitor = processes.start([sys.executable, "-m", "tasks.cli", "monitor"], name="monitor", env=env)
    wait_until(lambda: (hb := last_heartbeat(client)) and hb.entry == "fast-heartbeat", timeout_s=START_TIMEOUT_S,
               what="a heartbeat over TLS")
    wait_until(lambda: executed(client).get("guarded"), timeout_s=START_TIMEOUT_S, what="a guarded run over TLS")
    wait_until(lambda: client.zscore(HEARTBEATS_KEY, "monitor"), timeout_s=START_TIMEOUT_S,
               what="the monitor's heartbeat over TLS")
    # The result backend (Celery's, which refused a bare rediss:// URL) stores and reads a result.
    backend = subprocess.run([sys.executable, "-c", BACKEND_ROUND_TRIP], capture_output=True, text=True,
                             env={**os.environ, **env}, timeout=CLI_TIMEOUT_S)
    assert backend.stdout.strip() == "42", backend.stdout + backend.stderr
    assert all(count == 1 for count in executed(client)["guarded"].values())
    status = _status(env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "guarded" in status.stdout and "fast-heartbeat" in status.stdout
    assert worker.poll() is None and beat.poll() is None and monitor.poll() is None
    for proc in (worker, beat, monitor):
        log = proc.log_path.read_text()
        assert "Traceback" not in log and "ssl_cert_reqs" not in log, log[-2000:]


def test_a_certificate_from_another_ca_is_refused_in_one_line(tls_redis, tmp_path):
    server, files = tls_redis
    env = {"REDIS_URL": server.url, "CELERY_RESULT_BACKEND": server.url, **_tls_env(files, ca="other-ca")}
    status = _status(env)
    output = status.stdout + status.stderr
    assert status.returncode != 0 and "Traceback" not in output, output
    [refused] = status.stderr.splitlines()  # the report (what could be read) is on stdout
    assert refused.startswith(f"beatkeeper: Redis unreachable at REDIS_URL={server.url}"), output
    assert "certificate verify failed" in refused, output
