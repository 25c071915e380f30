"""TLS to Redis (``rediss://``): the one place its settings become client options.

The broker (``broker_use_ssl``), the result backend (``redis_backend_use_ssl``), redbeat
(``redbeat_redis_use_ssl``) and beatkeeper's own clients all take the dict built here, so a
``rediss://`` URL as a provider prints it works everywhere, with the server's certificate
verified (against the system CAs, or BEATKEEPER_REDIS_CA_FILE) unless told otherwise.

| variable                    | default  | meaning                                                   |
|-----------------------------|----------|-----------------------------------------------------------|
| BEATKEEPER_REDIS_CA_FILE    | (system) | CA bundle (PEM) that signed the server's certificate      |
| BEATKEEPER_REDIS_CERT_FILE  | (none)   | client certificate (PEM), when the server asks for one    |
| BEATKEEPER_REDIS_KEY_FILE   | (none)   | the client certificate's private key (PEM)                |
| BEATKEEPER_REDIS_TLS_VERIFY | required | required: certificate and host name checked; optional:    |
|                             |          | checked when sent; none: not checked (encryption only)    |
"""
from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from schedules.errors import SettingsError

VERIFY_MODES = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}
FILE_SETTINGS = {"BEATKEEPER_REDIS_CA_FILE": "ssl_ca_certs", "BEATKEEPER_REDIS_CERT_FILE": "ssl_certfile",
                 "BEATKEEPER_REDIS_KEY_FILE": "ssl_keyfile"}


class RedisTlsSettingError(SettingsError):
    """A TLS setting for Redis that cannot be used (unknown mode, missing file)."""


def uses_tls(url: str) -> bool:
    return urlsplit(url).scheme == "rediss"


def redis_ssl_options(url: str, environ: Mapping[str, str] | None = None, *, strict: bool = True) -> dict | None:
    """redis-py's ``ssl_*`` keyword arguments for ``url`` from the settings, or None when
    ``url`` is not ``rediss://`` (a plain URL must not be switched to TLS by a leftover CA).
    ``strict=False`` (celeryconfig, read before any one-line error can be printed) never raises:
    an unknown mode verifies, a missing file fails at connect; ``check_tls_settings`` refuses both."""
    if not uses_tls(url):
        return None
    environ = os.environ if environ is None else environ
    mode = (environ.get("BEATKEEPER_REDIS_TLS_VERIFY") or "required").strip().lower()
    if mode not in VERIFY_MODES:
        if strict:
            raise RedisTlsSettingError("BEATKEEPER_REDIS_TLS_VERIFY", mode,
                                       f"must be one of {', '.join(VERIFY_MODES)}")
        mode = "required"
    # The host name is checked only with a required certificate: ssl refuses the pair otherwise.
    options: dict = {"ssl_cert_reqs": VERIFY_MODES[mode], "ssl_check_hostname": mode == "required"}
    for variable, option in FILE_SETTINGS.items():
        path = (environ.get(variable) or "").strip()
        if not path:
            continue
        if strict and not Path(path).is_file():
            raise RedisTlsSettingError(variable, path, "no such file")
        options[option] = path
    return options


def client_ssl_kwargs(url: str, environ: Mapping[str, str] | None = None) -> dict:
    """``redis_ssl_options`` as keyword arguments for ``redis.Redis.from_url`` (empty for plain URLs)."""
    return redis_ssl_options(url, environ) or {}


def check_tls_settings(environ: Mapping[str, str]) -> None:
    """Raise RedisTlsSettingError (one line) when a ``rediss://`` URL meets unusable TLS settings."""
    for variable in ("REDIS_URL", "CELERY_RESULT_BACKEND"):
        redis_ssl_options(environ.get(variable) or "", environ)
