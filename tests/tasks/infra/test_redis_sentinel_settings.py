"""One set of Sentinel settings becomes the options of the broker, the result backend, redbeat and
beatkeeper's own clients (tasks/infra/redis_sentinel.py, celeryconfig.py); bad settings are one line.
Nothing here connects: the clients are built and their configuration read."""
from __future__ import annotations

import importlib
import ssl

import pytest
from redis.sentinel import SentinelConnectionPool

from schedules.errors import SettingsError
from tasks.infra.redis_sentinel import DEFAULT_PORT, SentinelSettings, check_sentinel_settings, sentinel_settings

SENTINELS = "10.0.0.1:26379,10.0.0.2:26380, sentinel-3"
ENVIRON = {"BEATKEEPER_REDIS_SENTINELS": SENTINELS, "BEATKEEPER_REDIS_SENTINEL_MASTER": "beatkeeper",
           "REDIS_PASSWORD": "data p@ss", "BEATKEEPER_REDIS_SENTINEL_PASSWORD": "sentinel-secret",
           "BEATKEEPER_REDIS_SENTINEL_DB": "2"}


def test_no_sentinels_means_redis_url():
    assert sentinel_settings({}) is None
    assert sentinel_settings({"BEATKEEPER_REDIS_SENTINELS": " ", "BEATKEEPER_REDIS_SENTINEL_MASTER": "x"}) is None


def test_the_documented_defaults():
    settings = sentinel_settings({"BEATKEEPER_REDIS_SENTINELS": "a:1"})
    assert settings == SentinelSettings(sentinels=(("a", 1),), master="mymaster", password=None,
                                        sentinel_password=None, db=0)
    assert sentinel_settings({"BEATKEEPER_REDIS_SENTINELS": "a"}).sentinels == (("a", DEFAULT_PORT),)


def test_the_settings_map_to_every_clients_options():
    settings = sentinel_settings(ENVIRON)
    assert settings.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26380), ("sentinel-3", 26379))
    # kombu and Celery's backend: one sentinel:// per sentinel; the password in it is the master's
    assert settings.broker_url() == ("sentinel://:data%20p%40ss@10.0.0.1:26379/2;"
                                     "sentinel://:data%20p%40ss@10.0.0.2:26380/2;"
                                     "sentinel://:data%20p%40ss@sentinel-3:26379/2")
    sentinel_kwargs = {"password": "sentinel-secret", "socket_timeout": 2.0, "socket_connect_timeout": 2.0}
    assert settings.transport_options() == {"master_name": "beatkeeper", "sentinel_kwargs": sentinel_kwargs}
    # redbeat: its sentinel branch takes the scheme from the URL, everything else from its options
    assert settings.redbeat_url().startswith("redis-sentinel://")
    assert settings.redbeat_options() == {
        "sentinels": [["10.0.0.1", 26379], ["10.0.0.2", 26380], ["sentinel-3", 26379]], "service_name": "beatkeeper",
        "db": 2, "password": "data p@ss", "sentinel_kwargs": sentinel_kwargs, "socket_timeout": 10}
    assert "secret" not in settings.label() and "p@ss" not in settings.label()


def test_tls_composes_with_the_tls_settings(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    settings = sentinel_settings({**ENVIRON, "BEATKEEPER_REDIS_SENTINEL_TLS": "1",
                                  "BEATKEEPER_REDIS_CA_FILE": str(ca)})
    tls = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_check_hostname": True, "ssl_ca_certs": str(ca)}
    assert settings.tls == tls
    assert settings.sentinel_kwargs() == {"password": "sentinel-secret", "socket_timeout": 2.0,
                                          "socket_connect_timeout": 2.0, "ssl": True, **tls}
    pool = settings.master_client().connection_pool
    assert pool.connection_kwargs["ssl_ca_certs"] == str(ca)
    assert pool.connection_class.__name__ == "SentinelManagedSSLConnection"


@pytest.mark.parametrize("environ, says", [
    ({"BEATKEEPER_REDIS_SENTINELS": "10.0.0.1:notaport"}, "BEATKEEPER_REDIS_SENTINELS='10.0.0.1:notaport': expected"),
    ({"BEATKEEPER_REDIS_SENTINELS": "a:1,:26379"}, "BEATKEEPER_REDIS_SENTINELS=':26379': expected host:port"),
    ({"BEATKEEPER_REDIS_SENTINELS": "a:70000"}, "BEATKEEPER_REDIS_SENTINELS='a:70000'"),
    ({"BEATKEEPER_REDIS_SENTINELS": ",,"}, "BEATKEEPER_REDIS_SENTINELS=',,': expected"),
    ({"BEATKEEPER_REDIS_SENTINELS": "a:1", "BEATKEEPER_REDIS_SENTINEL_MASTER": "my master"},
     "BEATKEEPER_REDIS_SENTINEL_MASTER='my master'"),
    ({"BEATKEEPER_REDIS_SENTINELS": "a:1", "BEATKEEPER_REDIS_SENTINEL_DB": "one"},
     "BEATKEEPER_REDIS_SENTINEL_DB='one': a database number"),
    ({"BEATKEEPER_REDIS_SENTINELS": "a:1", "BEATKEEPER_REDIS_SENTINEL_TLS": "maybe"},
     "BEATKEEPER_REDIS_SENTINEL_TLS='maybe': expected 1 or 0"),
    ({"BEATKEEPER_REDIS_SENTINELS": "a:1", "BEATKEEPER_REDIS_SENTINEL_TLS": "1",
      "BEATKEEPER_REDIS_CA_FILE": "/nonexistent/ca.pem"}, "BEATKEEPER_REDIS_CA_FILE='/nonexistent/ca.pem'"),
])
def test_an_unusable_setting_is_one_line_naming_it(environ, says):
    with pytest.raises(SettingsError) as refused:
        check_sentinel_settings(environ)
    assert str(refused.value).startswith(says) and "\n" not in str(refused.value)
    if says.startswith("BEATKEEPER_REDIS_SENTINEL"):  # (a missing TLS file fails at connect, as for rediss://)
        assert sentinel_settings(environ, strict=False) is None  # celeryconfig: refused at start instead


def test_the_cli_refuses_a_bad_setting_in_one_line(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "BEATKEEPER_REDIS_SENTINELS": "10.0.0.1:x"}
    done = subprocess.run([sys.executable, "-m", "tasks.cli", "check"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines() == [
        "beatkeeper: BEATKEEPER_REDIS_SENTINELS='10.0.0.1:x': expected host:port (e.g. 10.0.0.5:26379)"]


@pytest.fixture
def sentinel_app(monkeypatch):
    """celeryconfig read with the Sentinel settings, on a fresh Celery app (nothing connects)."""
    import celeryconfig
    from celery import Celery

    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    try:
        config = importlib.reload(celeryconfig)
        app = Celery("sentinel-test", set_as_current=False)
        app.config_from_object(config)
        yield config, app
    finally:
        monkeypatch.undo()
        importlib.reload(celeryconfig)


def test_celeryconfig_hands_the_settings_to_every_client(sentinel_app):
    from redbeat.schedulers import get_redis

    from tasks.infra.redis_client import app_redis

    config, app = sentinel_app
    settings = sentinel_settings(ENVIRON)
    assert config.broker_url == config.result_backend == settings.broker_url()
    assert config.broker_transport_options["master_name"] == "beatkeeper"
    assert config.broker_transport_options["visibility_timeout"] > 0  # kept beside Sentinel's options
    assert config.result_backend_transport_options["master_name"] == "beatkeeper"
    assert config.result_backend_transport_options["retry_policy"] == {"max_retries": 3}
    assert config.redbeat_redis_options == settings.redbeat_options()
    # each client asks the sentinels for the master named in the settings, with the master's password
    for client in (get_redis(app), app_redis(app)):
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "beatkeeper"
        assert pool.connection_kwargs["password"] == "data p@ss" and pool.connection_kwargs["db"] == 2
        asked = [s.connection_pool.connection_kwargs for s in pool.sentinel_manager.sentinels]
        assert [(k["host"], k["port"], k["password"]) for k in asked] == [
            ("10.0.0.1", 26379, "sentinel-secret"), ("10.0.0.2", 26380, "sentinel-secret"),
            ("sentinel-3", 26379, "sentinel-secret")]
    backend = app.backend
    assert type(backend).__name__ == "SentinelBackend"
    assert backend._transport_options["master_name"] == "beatkeeper"
    assert backend.connparams["password"] == "data p@ss" and backend.connparams["db"] == 2


def test_an_explicit_result_backend_is_kept(sentinel_app, monkeypatch):
    import celeryconfig

    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://results.example.com:6379/1")
    config = importlib.reload(celeryconfig)
    assert config.result_backend == "redis://results.example.com:6379/1"
    assert "master_name" not in config.result_backend_transport_options


def test_unreachable_sentinels_are_one_line_naming_them(monkeypatch):
    from redis.sentinel import MasterNotFoundError

    from tasks.infra.errors import redis_unreachable_line

    monkeypatch.setenv("BEATKEEPER_REDIS_SENTINELS", "10.0.0.1:26379,10.0.0.2:26379")
    monkeypatch.setenv("BEATKEEPER_REDIS_SENTINEL_PASSWORD", "sentinel-secret")
    exc = MasterNotFoundError("No master found for 'mymaster' : <redis.client.Redis(<...>)> - network:ConnectionError")
    line = redis_unreachable_line(sentinel_settings().redbeat_url(), exc)
    assert line == ("Redis unreachable at the Sentinel master 'mymaster' "
                    "(BEATKEEPER_REDIS_SENTINELS=10.0.0.1:26379,10.0.0.2:26379): No master found for 'mymaster'")


def test_make_run_refuses_sentinels_that_name_no_master_in_one_line(monkeypatch):
    from tasks.cli.runner import RunnerError, check_sentinel
    from tests.servers import free_port

    monkeypatch.delenv("BEATKEEPER_REDIS_SENTINELS", raising=False)
    assert check_sentinel() is None  # no sentinels: REDIS_URL as before
    where = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("BEATKEEPER_REDIS_SENTINELS", where)
    with pytest.raises(RunnerError) as refused:
        check_sentinel()
    assert str(refused.value) == (f"Redis unreachable at the Sentinel master 'mymaster' "
                                  f"(BEATKEEPER_REDIS_SENTINELS={where}): No master found for 'mymaster'")
    monkeypatch.setenv("BEATKEEPER_REDIS_SENTINELS", "nowhere:port")
    with pytest.raises(RunnerError, match="^BEATKEEPER_REDIS_SENTINELS='nowhere:port': expected host:port"):
        check_sentinel()
