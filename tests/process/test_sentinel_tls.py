"""Sentinel and TLS compose: a master and a sentinel that answer TLS only (mutual TLS, certificates
made here with trustme), reached from BEATKEEPER_REDIS_SENTINELS + BEATKEEPER_REDIS_SENTINEL_TLS=1
and the TLS settings of tasks/infra/redis_tls.py. The broker, the result backend, redbeat and beatkeeper's
own client each do a round trip through the master the sentinel names."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import redis

from tasks.infra.redis_tls import client_ssl_kwargs
from tests.process.test_tls_redis import _tls_env, tls_redis  # noqa: F401  (fixture: a mutual-TLS master)
from tests.servers import free_port, wait_until

pytestmark = pytest.mark.process

MASTER_NAME = "tlsmaster"
ROUND_TRIPS = """
from redbeat.schedulers import get_redis
from tasks import app
from tasks.infra.redis_client import app_redis

app_redis(app).set("probe:beatkeeper", "1")
get_redis(app).set("probe:redbeat", "1")
app.backend.store_result("probe-result", 42, "SUCCESS")
print("backend", app.AsyncResult("probe-result").get(timeout=10))
with app.connection_for_write() as connection:
    queue = connection.SimpleQueue("probe")
    queue.put({"through": "kombu"})
    message = queue.get(timeout=10)
    message.ack()
    print("broker", message.payload["through"])
"""


@pytest.fixture
def tls_sentinel(tls_redis, tmp_path):  # noqa: F811
    server, files = tls_redis
    port = free_port()
    workdir = tmp_path / "sentinel"
    workdir.mkdir()
    conf = workdir / "sentinel.conf"
    conf.write_text("\n".join([
        "port 0", f"tls-port {port}", "bind 127.0.0.1", f"dir {workdir}", f"logfile {workdir / 'sentinel.log'}",
        f"tls-cert-file {files['cert']}", f"tls-key-file {files['key']}", f"tls-ca-cert-file {files['ca']}",
        # its own connections to the master go over TLS with a client certificate of the same CA
        "tls-replication yes", f"tls-client-cert-file {files['client-cert']}",
        f"tls-client-key-file {files['client-key']}", "tls-auth-clients yes",
        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {server.port} 1", ""]))
    proc = subprocess.Popen([shutil.which("redis-server"), str(conf), "--sentinel"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, ssl=True, ssl_ca_certs=str(files["ca"]), ssl_certfile=str(files["client-cert"]),
                             ssl_keyfile=str(files["client-key"]), socket_timeout=2, decode_responses=True)

        def names_the_master() -> bool:
            try:
                return client.sentinel_get_master_addr_by_name(MASTER_NAME) == ("127.0.0.1", server.port)
            except redis.RedisError:
                return False
        wait_until(names_the_master, timeout_s=20, what="the TLS sentinel to name the master")
        yield server, files, port
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_broker_backend_redbeat_and_beatkeeper_reach_the_master_over_tls_through_the_sentinel(tls_sentinel):
    server, files, sentinel_port = tls_sentinel
    env = {**os.environ, **_tls_env(files), "BEATKEEPER_REDIS_SENTINELS": f"127.0.0.1:{sentinel_port}",
           "BEATKEEPER_REDIS_SENTINEL_MASTER": MASTER_NAME, "BEATKEEPER_REDIS_SENTINEL_TLS": "1"}
    env.pop("REDIS_URL", None)
    env.pop("CELERY_RESULT_BACKEND", None)
    done = subprocess.run([sys.executable, "-c", ROUND_TRIPS], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split("\n")[:2] == ["backend 42", "broker kombu"], done.stdout + done.stderr
    master = redis.Redis.from_url(server.url, decode_responses=True, **client_ssl_kwargs(server.url, env))
    assert master.get("probe:beatkeeper") == master.get("probe:redbeat") == "1"
    assert master.config_get("port")["port"] == "0"  # TLS only: every round trip above was TLS
