"""Redis Sentinel: the one place its settings become the options of every client.

With BEATKEEPER_REDIS_SENTINELS set, the sentinels name the master: kombu's broker
(``sentinel://`` + ``master_name``), Celery's result backend (the same), redbeat
(``redis-sentinel://`` + ``redbeat_redis_options``) and beatkeeper's own clients
(``redis.sentinel.Sentinel.master_for``) all ask them, and each follows a failover on its
next reconnect, without a restart. REDIS_URL is then not used. TLS composes: with
BEATKEEPER_REDIS_SENTINEL_TLS=1 the sentinels and the master are reached over TLS with the
settings of tasks/infra/redis_tls.py.

| variable                          | default  | meaning                                                 |
|-----------------------------------|----------|---------------------------------------------------------|
| BEATKEEPER_REDIS_SENTINELS        | (none)   | host:port,host:port,... of the sentinels (port: 26379)  |
| BEATKEEPER_REDIS_SENTINEL_MASTER  | mymaster | the master's name in the sentinels' configuration       |
| BEATKEEPER_REDIS_SENTINEL_PASSWORD| (none)   | the sentinels' own password (their requirepass)         |
| REDIS_PASSWORD                    | (none)   | the master's and replicas' password                     |
| BEATKEEPER_REDIS_SENTINEL_DB      | 0        | the database number on the master                       |
| BEATKEEPER_REDIS_SENTINEL_TLS     | 0        | 1: TLS to the sentinels and the master                  |
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from schedules.errors import SettingsError
from tasks.infra.redis_tls import redis_ssl_options

SENTINELS = "BEATKEEPER_REDIS_SENTINELS"
MASTER = "BEATKEEPER_REDIS_SENTINEL_MASTER"
SENTINEL_PASSWORD = "BEATKEEPER_REDIS_SENTINEL_PASSWORD"
PASSWORD = "REDIS_PASSWORD"
DB = "BEATKEEPER_REDIS_SENTINEL_DB"
TLS = "BEATKEEPER_REDIS_SENTINEL_TLS"
DEFAULT_PORT = 26379
DEFAULT_MASTER = "mymaster"
REDBEAT_SCHEME = "redis-sentinel"  # redbeat takes its sentinel branch on this prefix
SENTINEL_TIMEOUT_S = 2.0  # seconds a sentinel may take to answer "who is the master?"


class RedisSentinelSettingError(SettingsError):
    """A Sentinel setting that cannot be used (an address without a port number, a bad db)."""


@dataclass(frozen=True)
class SentinelSettings:
    sentinels: tuple[tuple[str, int], ...]
    master: str = DEFAULT_MASTER
    password: str | None = None  # the master's (and replicas')
    sentinel_password: str | None = None
    db: int = 0
    tls_options: tuple[tuple[str, object], ...] | None = None  # redis-py ssl_* options when TLS is on (hashable)

    @property
    def tls(self) -> dict | None:
        return None if self.tls_options is None else dict(self.tls_options)

    # -- what each client is given ------------------------------------------------------------
    def broker_url(self) -> str:
        """kombu's: one ``sentinel://`` per sentinel, ``;``-separated; the password is the master's."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return ";".join(f"sentinel://{auth}{host}:{port}/{self.db}" for host, port in self.sentinels)

    def sentinel_kwargs(self) -> dict:
        """Options of the connections to the sentinels themselves (not to the master)."""
        options: dict = {"socket_timeout": SENTINEL_TIMEOUT_S, "socket_connect_timeout": SENTINEL_TIMEOUT_S}
        if self.sentinel_password:
            options["password"] = self.sentinel_password
        if self.tls is not None:
            options.update(ssl=True, **self.tls)
        return options

    def transport_options(self) -> dict:
        """kombu's and the result backend's transport options (merged into the app's)."""
        return {"master_name": self.master, "sentinel_kwargs": self.sentinel_kwargs()}

    def redbeat_url(self) -> str:
        host, port = self.sentinels[0]  # redbeat reads only the scheme; the sentinels are in its options
        return f"{REDBEAT_SCHEME}://{host}:{port}/{self.db}"

    def redbeat_options(self) -> dict:
        options = {"sentinels": [list(s) for s in self.sentinels], "service_name": self.master, "db": self.db,
                   "sentinel_kwargs": self.sentinel_kwargs(), "socket_timeout": 10}
        if self.password:
            options["password"] = self.password
        return options

    def label(self) -> str:
        """Where beatkeeper looks for Redis, for one-line messages (no password)."""
        where = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"the Sentinel master '{self.master}' ({SENTINELS}={where})"

    def master_client(self, **options) -> redis.Redis:
        """A client of whichever server the sentinels name master now: a failover is followed at
        the next connection (redis-py's SentinelConnectionPool asks the sentinels again)."""
        tls = {"ssl": True, **self.tls} if self.tls is not None else {}
        return _sentinel(self).master_for(self.master, password=self.password, db=self.db, **tls, **options)


@lru_cache(maxsize=4)
def _sentinel(settings: SentinelSettings) -> Sentinel:
    # One question per sentinel, no retries of it: the next sentinel is the retry (redis-py's default
    # backoff made a round of two down sentinels take 8 s); the master client retries the command.
    asking = {**settings.sentinel_kwargs(), "retry": Retry(NoBackoff(), 0)}
    return Sentinel([tuple(s) for s in settings.sentinels], sentinel_kwargs=asking)


def _address(raw: str) -> tuple[str, int]:
    host, colon, port = raw.strip().rpartition(":")
    if not colon:
        host, port = raw.strip(), str(DEFAULT_PORT)
    host = host.strip("[]")  # an IPv6 address in brackets
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RedisSentinelSettingError(SENTINELS, raw.strip(), "expected host:port (e.g. 10.0.0.5:26379)")
    return host, int(port)


def sentinel_settings(environ: Mapping[str, str] | None = None, *, strict: bool = True) -> SentinelSettings | None:
    """The Sentinel settings of ``environ``, or None when BEATKEEPER_REDIS_SENTINELS is unset.

    ``strict=False`` (celeryconfig, read before a one-line error can be printed) returns None for
    settings that cannot be used; ``check_sentinel_settings`` refuses them at start, in one line."""
    environ = os.environ if environ is None else environ
    raw = (environ.get(SENTINELS) or "").strip()
    if not raw:
        return None
    try:
        return _parse(environ, raw, strict=strict)
    except SettingsError:
        if strict:
            raise
        return None


def _parse(environ: Mapping[str, str], raw: str, *, strict: bool) -> SentinelSettings:
    sentinels = tuple(_address(part) for part in raw.split(",") if part.strip())
    if not sentinels:
        raise RedisSentinelSettingError(SENTINELS, raw, "expected host:port,host:port,...")
    master = (environ.get(MASTER) or DEFAULT_MASTER).strip()
    if not master or any(c.isspace() for c in master):
        raise RedisSentinelSettingError(MASTER, master, "a master name without spaces")
    db = (environ.get(DB) or "0").strip()
    if not db.isdigit():
        raise RedisSentinelSettingError(DB, db, "a database number (0, 1, ...)")
    tls_flag = (environ.get(TLS) or "0").strip().lower()
    if tls_flag not in ("0", "1", "true", "false", "yes", "no", "on", "off"):
        raise RedisSentinelSettingError(TLS, tls_flag, "expected 1 or 0")
    # TLS takes its options (CA, client certificate, verify mode) where rediss:// URLs do.
    tls = redis_ssl_options("rediss://", environ, strict=strict) if tls_flag in ("1", "true", "yes", "on") else None
    return SentinelSettings(sentinels=sentinels, master=master, password=environ.get(PASSWORD) or None,
                            sentinel_password=environ.get(SENTINEL_PASSWORD) or None, db=int(db),
                            tls_options=None if tls is None else tuple(tls.items()))


def check_sentinel_settings(environ: Mapping[str, str]) -> None:
    """Raise RedisSentinelSettingError (one line) for Sentinel settings that cannot be used."""
    sentinel_settings(environ)
