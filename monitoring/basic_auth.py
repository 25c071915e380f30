"""HTTP basic auth for beatkeeper's web surfaces (Flower, the monitor): the one rule for
usable credentials, and the check of a request against them."""
from __future__ import annotations

import base64
import binascii
import hmac


def credentials_problem(variable: str, value: str | None) -> str | None:
    """Why ``value`` (``user:password``, comma-separated pairs as Flower reads them) cannot
    protect a web surface, or None when every pair has a non-empty user and password."""
    if not (value or "").strip():
        return f"{variable} is not set: set it to user:password (both non-empty)"
    for pair in value.split(","):
        user, colon, password = pair.strip().partition(":")
        if not user or not colon or not password:
            return (f"{variable}: the entry for user {user or '(none)'} has an empty user or password: "
                    "set user:password with both non-empty")
    return None


def authorized(header: str | None, credentials: str) -> bool:
    """True when an ``Authorization: Basic ...`` header carries one of ``credentials``' pairs."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(token.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    # compare_digest on every pair: no early exit that times which pair is close
    return any([hmac.compare_digest(given.encode(), pair.strip().encode()) for pair in credentials.split(",")])
