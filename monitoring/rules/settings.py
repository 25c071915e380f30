"""The monitor's thresholds, each read from the environment with a documented default.

| variable                               | default | what it bounds                                        |
|----------------------------------------|---------|-------------------------------------------------------|
| BEATKEEPER_ALERT_HEARTBEAT_MAX_AGE     | 3m      | age of beat's heartbeat before ``beat_heartbeat``     |
| BEATKEEPER_MISSED_GRACE                | 60s     | least wait for a fire's history row before it is missed|
| BEATKEEPER_MISSED_GRACE_FRACTION       | 0.1     | ... or this share of the entry's interval, if longer  |
| BEATKEEPER_ALERT_CONSECUTIVE_FAILURES  | 3       | failed runs in a row before ``consecutive_failures``  |
| BEATKEEPER_ALERT_INVOCATIONS_PER_HOUR  | 1000    | runs of one task in the rolling hour (more alerts)    |
| BEATKEEPER_ALERT_EVENT_QUIET           | 15m     | an event alert resolves after this long without a new |
|                                        |         | event (``budget_exceeded``: at least 65 min, since the|
|                                        |         | budget reports once an hour)                          |
| BEATKEEPER_ALERT_WORKERS_FOR           | 30s     | a queue without a consumer this long alerts           |

Durations accept seconds or "90s", "3m", "1h". The e-mail settings are read here too
(``monitoring.sinks`` documents them). Nothing here reads a clock or Redis.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from schedules.durations import parse_duration_s
from schedules.errors import DurationError, SettingsError


class MonitorSettingError(SettingsError):
    """A monitor threshold in the environment that cannot be used."""


def seconds_from_env(environ: Mapping[str, str], variable: str, default_s: float, *,
                     positive: bool = True) -> float:
    """``variable`` as seconds (a number or "3m"), ``default_s`` when unset or blank."""
    raw = (environ.get(variable) or "").strip()
    if not raw:
        return default_s
    try:
        seconds = parse_duration_s(raw)
    except DurationError as exc:
        raise MonitorSettingError(variable, raw, exc.reason) from None
    if seconds < 0 or (positive and seconds == 0):
        raise MonitorSettingError(variable, raw, "must be greater than 0" if positive else "must not be negative")
    return seconds


def int_from_env(environ: Mapping[str, str], variable: str, default: int) -> int:
    """``variable`` as a whole number greater than 0, ``default`` when unset or blank."""
    raw = (environ.get(variable) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise MonitorSettingError(variable, raw, "expected a whole number") from None
    if value <= 0:
        raise MonitorSettingError(variable, raw, "must be greater than 0")
    return value


def fraction_from_env(environ: Mapping[str, str], variable: str, default: float) -> float:
    """``variable`` as a number from 0 to 1, ``default`` when unset or blank."""
    raw = (environ.get(variable) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise MonitorSettingError(variable, raw, "expected a number such as 0.1") from None
    if not 0 <= value <= 1:
        raise MonitorSettingError(variable, raw, "must be between 0 and 1")
    return value


@dataclass(frozen=True)
class RuleSettings:
    """Every rule threshold; the defaults are the transit brief's."""

    heartbeat_max_age_s: float = 180.0
    missed_grace_s: float = 60.0
    missed_grace_fraction: float = 0.1
    consecutive_failures: int = 3
    invocations_per_hour: int = 1000
    event_quiet_s: float = 900.0
    workers_for_s: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> RuleSettings:
        """Thresholds from ``environ``; raises MonitorSettingError on a value it cannot use."""
        return cls(
            heartbeat_max_age_s=seconds_from_env(environ, "BEATKEEPER_ALERT_HEARTBEAT_MAX_AGE", 180.0),
            missed_grace_s=seconds_from_env(environ, "BEATKEEPER_MISSED_GRACE", 60.0, positive=False),
            missed_grace_fraction=fraction_from_env(environ, "BEATKEEPER_MISSED_GRACE_FRACTION", 0.1),
            consecutive_failures=int_from_env(environ, "BEATKEEPER_ALERT_CONSECUTIVE_FAILURES", 3),
            invocations_per_hour=int_from_env(environ, "BEATKEEPER_ALERT_INVOCATIONS_PER_HOUR", 1000),
            event_quiet_s=seconds_from_env(environ, "BEATKEEPER_ALERT_EVENT_QUIET", 900.0),
            workers_for_s=seconds_from_env(environ, "BEATKEEPER_ALERT_WORKERS_FOR", 30.0, positive=False),
        )


@dataclass(frozen=True)
class SmtpSettings:
    """The e-mail sink's settings (``BEATKEEPER_ALERT_SMTP_*``, documented in ``monitoring.sinks``)."""

    host: str
    recipients: tuple[str, ...]
    port: int = 25
    tls: str = "none"  # "ssl", "starttls" or "none"
    user: str | None = None
    password: str | None = None
    sender: str = "beatkeeper@localhost"


def smtp_settings_from_env(environ: Mapping[str, str], host: str) -> SmtpSettings:
    """The e-mail settings for ``host``; raises MonitorSettingError naming the variable at fault."""
    recipients = tuple(r.strip() for r in (environ.get("BEATKEEPER_ALERT_SMTP_TO") or "").split(",") if r.strip())
    if not recipients:
        raise MonitorSettingError("BEATKEEPER_ALERT_SMTP_TO", environ.get("BEATKEEPER_ALERT_SMTP_TO", ""),
                                  "BEATKEEPER_ALERT_SMTP_HOST is set: name at least one recipient")
    port = int_from_env(environ, "BEATKEEPER_ALERT_SMTP_PORT", 25)
    tls = (environ.get("BEATKEEPER_ALERT_SMTP_TLS") or "").strip().lower()
    tls = tls or {465: "ssl", 587: "starttls"}.get(port, "none")
    if tls not in ("ssl", "starttls", "none"):
        raise MonitorSettingError("BEATKEEPER_ALERT_SMTP_TLS", tls, "expected ssl, starttls or none")
    return SmtpSettings(host=host, recipients=recipients, port=port, tls=tls,
                        user=(environ.get("BEATKEEPER_ALERT_SMTP_USER") or "").strip() or None,
                        password=environ.get("BEATKEEPER_ALERT_SMTP_PASSWORD") or None,
                        sender=(environ.get("BEATKEEPER_ALERT_SMTP_FROM") or "").strip()
                        or f"beatkeeper@{socket.gethostname()}")
