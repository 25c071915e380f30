"""The TLS settings become one dict of redis-py options, and celeryconfig hands it to every client."""
from __future__ import annotations

import importlib
import ssl

import pytest

from schedules.errors import SettingsError
from tasks.infra.redis_tls import check_tls_settings, client_ssl_kwargs, redis_ssl_options

URL = "rediss://default:secret@redis.example.com:6380/0"


def test_a_plain_url_gets_no_tls_whatever_the_settings():
    assert redis_ssl_options("redis://localhost:6379/0", {"BEATKEEPER_REDIS_TLS_VERIFY": "none"}) is None
    assert client_ssl_kwargs("unix:///tmp/redis.sock", {}) == {}


def test_a_rediss_url_verifies_the_certificate_and_host_name_by_default():
    assert redis_ssl_options(URL, {}) == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_check_hostname": True}


def test_the_files_and_the_mode_come_from_the_settings(tmp_path):
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("pem")
    options = redis_ssl_options(URL, {"BEATKEEPER_REDIS_CA_FILE": str(files["ca"]),
                                      "BEATKEEPER_REDIS_CERT_FILE": str(files["cert"]),
                                      "BEATKEEPER_REDIS_KEY_FILE": str(files["key"]),
                                      "BEATKEEPER_REDIS_TLS_VERIFY": "optional"})
    assert options == {"ssl_cert_reqs": ssl.CERT_OPTIONAL, "ssl_check_hostname": False,
                       "ssl_ca_certs": str(files["ca"]), "ssl_certfile": str(files["cert"]),
                       "ssl_keyfile": str(files["key"])}


@pytest.mark.parametrize("environ, says", [
    ({"BEATKEEPER_REDIS_TLS_VERIFY": "sometimes"}, "BEATKEEPER_REDIS_TLS_VERIFY='sometimes': must be one of"),
    ({"BEATKEEPER_REDIS_CA_FILE": "/nonexistent/ca.pem"}, "BEATKEEPER_REDIS_CA_FILE='/nonexistent/ca.pem': no such"),
])
def test_an_unusable_setting_is_one_line_naming_it(environ, says):
    with pytest.raises(SettingsError) as refused:
        redis_ssl_options(URL, environ)
    assert str(refused.value).startswith(says)


def test_celeryconfig_gives_the_same_options_to_the_broker_the_backend_and_redbeat(monkeypatch):
    import celeryconfig

    monkeypatch.setenv("REDIS_URL", URL)
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    monkeypatch.setenv("BEATKEEPER_REDIS_TLS_VERIFY", "none")
    try:
        config = importlib.reload(celeryconfig)
        expected = {"ssl_cert_reqs": ssl.CERT_NONE, "ssl_check_hostname": False}
        assert config.broker_use_ssl == config.redis_backend_use_ssl == config.redbeat_redis_use_ssl == expected
    finally:
        monkeypatch.undo()
        importlib.reload(celeryconfig)


def test_celeryconfig_never_raises_but_the_start_refuses_in_one_line():
    environ = {"REDIS_URL": "redis://localhost/0", "CELERY_RESULT_BACKEND": URL, "BEATKEEPER_REDIS_TLS_VERIFY": "x"}
    assert redis_ssl_options(URL, environ, strict=False)["ssl_cert_reqs"] == ssl.CERT_REQUIRED  # unknown: verify
    check_tls_settings({**environ, "CELERY_RESULT_BACKEND": ""})  # no rediss:// URL: nothing to check
    with pytest.raises(SettingsError, match="BEATKEEPER_REDIS_TLS_VERIFY='x'"):
        check_tls_settings(environ)  # tasks.application's loader calls it before beat/worker/CLI start
