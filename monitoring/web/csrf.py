"""CSRF tokens for the dashboard's forms: an HMAC of the signed-in user under a secret the
process draws at start. A form posted from another site cannot carry it (it cannot read our
pages), so a logged-in browser cannot be made to pause or run anything by a third party."""
from __future__ import annotations

import hashlib
import hmac
import secrets


class CsrfTokens:
    def __init__(self, secret: bytes | None = None):
        self._secret = secret or secrets.token_bytes(32)

    def token_for(self, user: str) -> str:
        return hmac.new(self._secret, user.encode(), hashlib.sha256).hexdigest()

    def valid(self, user: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.token_for(user), token or "")
