"""Infrastructure errors as one line: an unreachable Redis or database, a bad URL, a task module
that cannot be imported.

Every process says the same thing in the same words: the CLI (``tasks.cli``), the local
runner, beat, the workers and the monitor. A line names the setting and its target with the
password masked, e.g. ``Redis unreachable at REDIS_URL=redis://:**@10.0.0.5:6379/0: Error 111
connecting to 10.0.0.5:6379. Connection refused.``. Tracebacks of these errors carry nothing
an operator can act on, so the logging filter below replaces them by that line.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import redis
from kombu.exceptions import OperationalError as KombuOperationalError
from kombu.utils.url import maybe_sanitize_url

from schedules.errors import SettingsError
from tasks.infra.redis_sentinel import sentinel_settings

REDIS_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis-sentinel://", "sentinel://")  # the app's URLs when Sentinel names the master
DEFAULT_REDIS_URL = "redis://localhost:6379/0"  # celeryconfig's default


class TaskModuleError(SettingsError):
    """A module named in BEATKEEPER_TASK_MODULES cannot be imported."""

    def __init__(self, module: str, exc: BaseException):
        super().__init__("BEATKEEPER_TASK_MODULES", module,
                         f"cannot import it ({type(exc).__name__}: {_first_line(exc)})")


def named_task_modules(environ: Mapping[str, str]) -> list[str]:
    """The modules named in BEATKEEPER_TASK_MODULES, in order."""
    return [m.strip() for m in environ.get("BEATKEEPER_TASK_MODULES", "").split(",") if m.strip()]


class RedisUrlError(SettingsError):
    """REDIS_URL is not a URL redis-py and kombu can use."""


def masked_redis_url(url: str) -> str:
    """``url`` with its password replaced by ``**`` (kombu's own masking)."""
    return maybe_sanitize_url(url, mask="**")


def masked_database_url(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even parseable: show only its scheme
        return f"{url.split(':', 1)[0]}:..."


def redis_url(environ: Mapping[str, str] | None = None) -> str:
    """REDIS_URL of ``environ``; by default the app's (which tests may point elsewhere)."""
    if environ is None:
        from tasks.application import app

        return app.conf.redis_url or DEFAULT_REDIS_URL
    return environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def check_redis_url(url: str) -> None:
    """Raise RedisUrlError when ``url`` is not a redis://, rediss:// or unix:// URL."""
    scheme = urlsplit(url).scheme
    if scheme not in REDIS_SCHEMES:
        raise RedisUrlError("REDIS_URL", masked_redis_url(url), "not a Redis URL (it must start with "
                            f"{', '.join(s + '://' for s in REDIS_SCHEMES)})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def redis_unreachable_line(url: str, exc: BaseException) -> str:
    sentinel = sentinel_settings(strict=False) if url.startswith(SENTINEL_SCHEMES) else None
    if sentinel is not None:  # the sentinels name the master: say which ones were asked
        # redis-py's MasterNotFoundError appends the repr of every sentinel client after " : "
        return f"Redis unreachable at {sentinel.label()}: {_first_line(exc).split(' : <', 1)[0]}"
    return f"Redis unreachable at REDIS_URL={masked_redis_url(url)}: {_first_line(exc)}"


def infra_error_line(exc: BaseException, environ: Mapping[str, str] | None = None) -> str | None:
    """The one line for an infrastructure error, or None when ``exc`` is not one (nor caused by
    one: Celery wraps a Redis error of its result backend in a RuntimeError)."""
    seen = 0
    while exc is not None and seen < 5:
        line = _own_line(exc, environ)
        if line is not None:
            return line
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _own_line(exc: BaseException, environ: Mapping[str, str] | None) -> str | None:
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, KombuOperationalError)):
        return redis_unreachable_line(redis_url(environ), exc)
    if isinstance(exc, ValueError) and str(exc).startswith("Redis URL must specify"):
        return f"REDIS_URL={masked_redis_url(redis_url(environ))}: {_first_line(exc)}"
    try:
        from sqlalchemy import exc as sql_errors
    except ImportError:  # pragma: no cover - SQLAlchemy is a dependency
        return None
    if isinstance(exc, (sql_errors.OperationalError, sql_errors.InterfaceError, sql_errors.ArgumentError,
                        sql_errors.NoSuchModuleError, sql_errors.ProgrammingError)):
        from monitoring.db import database_url

        detail = _first_line(getattr(exc, "orig", None) or exc)
        hint = " (run `beatkeeper db upgrade`)" if "no such table" in detail or "does not exist" in detail else ""
        url = database_url(os.environ if environ is None else environ)
        return f"history database unusable at DATABASE_URL={masked_database_url(url)}: " \
               f"{detail}{hint}"
    return None


def is_bad_setting(exc: BaseException) -> bool:
    """True for a URL that cannot be used at all (fix the setting), False for a target that
    does not answer (fix or wait for the server)."""
    from sqlalchemy import exc as sql_errors

    return isinstance(exc, (ValueError, sql_errors.ArgumentError, sql_errors.NoSuchModuleError))


class OneLineInfraErrors(logging.Filter):
    """Turns a logged infrastructure error into one line: its traceback is dropped for
    :func:`infra_error_line`, and a multi-line message (Celery's "Cannot connect to ...
    Trying again") is joined into one."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        line = infra_error_line(error) if error is not None else None
        message = record.getMessage()
        if line is None and "\n" not in message.strip():
            return True
        parts = [p.strip() for p in message.splitlines() if p.strip()]
        if line is not None:
            parts.append(line)
            record.exc_info, record.exc_text = None, None
        record.msg, record.args = " ".join(parts).replace("Cannot connect to redis", "Cannot connect to "
                                                          "REDIS_URL=redis"), ()
        return True


def install_on(logger: logging.Logger) -> None:
    """Add the filter to every handler of ``logger`` (Celery's ``after_setup_logger`` hook)."""
    for handler in logger.handlers:
        if not any(isinstance(f, OneLineInfraErrors) for f in handler.filters):
            handler.addFilter(OneLineInfraErrors())


def wait_for_broker(app, *, who: str, log: logging.Logger, interval_max_s: float = 5.0,
                    on_retry: Callable[[int], None] | None = None) -> None:
    """Block until the broker (REDIS_URL) answers, with kombu's own retry and backoff, logging
    one line per failed attempt. ``broker_connection_max_retries`` bounds the attempts
    (None: for ever); past it the last error is raised."""
    attempts = 0

    url = app.conf.broker_url or redis_url()
    # A broker apart from the state store (CELERY_BROKER_URL, tasks/infra/broker.py) is named as such.
    apart = url != (app.conf.get("redis_url") or url)
    label = f"the broker at CELERY_BROKER_URL={masked_redis_url(url)}" if apart else \
        f"Redis at REDIS_URL={masked_redis_url(url)}"

    def errback(exc: BaseException, interval_s: float) -> None:
        nonlocal attempts
        attempts += 1
        line = f"{label} is unreachable: {_first_line(exc)}" if apart else redis_unreachable_line(url, exc)
        log.warning("%s: %s (trying again in %.0f s, attempt %d)", who, line, interval_s, attempts)
        if on_retry is not None:
            on_retry(attempts)

    with app.connection_for_write() as connection:
        connection.ensure_connection(errback=errback, max_retries=app.conf.broker_connection_max_retries,
                                     interval_start=1, interval_step=1, interval_max=interval_max_s)
    if attempts:
        log.info("%s: %s answers", who, label)
