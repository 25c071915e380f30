"""E-mail over SMTP (smtplib), configured from the environment.

| variable           | default                        | meaning                              |
|--------------------|--------------------------------|--------------------------------------|
| GIFT_SMTP_HOST     | (required to send)             | the SMTP server                      |
| GIFT_SMTP_PORT     | 25                             |                                      |
| GIFT_SMTP_TLS      | ssl on 465, starttls on 587,   | ``ssl``, ``starttls`` or ``none``    |
|                    | else none                      |                                      |
| GIFT_SMTP_USER     | (none: no login)               |                                      |
| GIFT_SMTP_PASSWORD | (none)                         |                                      |
| GIFT_SMTP_FROM     | sneaky-klaus@<host name>       | sender address                       |

A failed send raises (an ``OSError``: smtplib's errors are ones): the task fails or, for the
reminders, is retried by its entry's ``retry`` policy.
"""
from __future__ import annotations

import os
import smtplib
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage

SEND_TIMEOUT_S = 30.0  # seconds for the connection and each SMTP command
TLS_CHOICES = ("ssl", "starttls", "none")


class MailSettingError(ValueError):
    """A GIFT_SMTP_* variable is missing or wrong: one line naming it."""

    def __init__(self, name: str, value: str, problem: str):
        self.name = name
        super().__init__(f"{name}={value!r}: {problem}")


@dataclass(frozen=True)
class Mailer:
    host: str
    port: int = 25
    tls: str = "none"
    user: str | None = None
    password: str | None = None
    sender: str = "sneaky-klaus@localhost"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Mailer:
        host = (environ.get("GIFT_SMTP_HOST") or "").strip()
        if not host:
            raise MailSettingError("GIFT_SMTP_HOST", "", "must name the SMTP server the example sends through")
        raw_port = (environ.get("GIFT_SMTP_PORT") or "25").strip()
        if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
            raise MailSettingError("GIFT_SMTP_PORT", raw_port, "expected a port number")
        port = int(raw_port)
        tls = (environ.get("GIFT_SMTP_TLS") or "").strip().lower() or {465: "ssl", 587: "starttls"}.get(port, "none")
        if tls not in TLS_CHOICES:
            raise MailSettingError("GIFT_SMTP_TLS", tls, "expected ssl, starttls or none")
        return cls(host=host, port=port, tls=tls, user=(environ.get("GIFT_SMTP_USER") or "").strip() or None,
                   password=environ.get("GIFT_SMTP_PASSWORD") or None,
                   sender=(environ.get("GIFT_SMTP_FROM") or "").strip() or f"sneaky-klaus@{socket.gethostname()}")

    def send(self, to: str, subject: str, body: str, *, headers: Mapping[str, str] | None = None) -> None:
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self.sender
        message["To"] = to
        for name, value in (headers or {}).items():
            message[name] = value
        message.set_content(body)
        smtp_class = smtplib.SMTP_SSL if self.tls == "ssl" else smtplib.SMTP
        with smtp_class(self.host, self.port, timeout=SEND_TIMEOUT_S) as server:
            if self.tls == "starttls":
                server.starttls()
            if self.user:
                server.login(self.user, self.password or "")
            server.send_message(message)
