"""The console's sign-in: a user's API token exchanged for a session cookie.

The cookie holds the token itself, so every page authenticates exactly as the API does
(archive.governance.auth.authenticate: revoked, expired and disabled are refused at once)
and no session table is needed by any number of API processes. It is HttpOnly (no script
reads it), SameSite=Strict (no other site's page sends it), Secure when the console is
served over HTTPS, and expires SESSION_LIFETIME after sign-in: the moment of sign-in is in
the cookie under a MAC keyed by the token's secret, so it cannot be moved forward without
the token. The CSRF token of the forms is derived the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

SESSION_COOKIE = "amana_session"
LOGIN_CSRF_COOKIE = "amana_login_csrf"
SESSION_LIFETIME = timedelta(hours=8)


def _mac(token: str, purpose: str, issued: int) -> str:
    key = token.encode("utf-8")
    return hmac.new(key, f"{purpose}:{issued}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ConsoleSession:
    token: str
    issued: int  # seconds since the epoch, UTC

    @property
    def csrf(self) -> str:
        return _mac(self.token, "csrf", self.issued)[:40]

    def cookie_value(self) -> str:
        return f"{self.issued}:{self.token}:{_mac(self.token, 'session', self.issued)}"

    def csrf_ok(self, presented: str | None) -> bool:
        # Bytes: a non-ASCII str would make compare_digest raise instead of refuse.
        return presented is not None and hmac.compare_digest(self.csrf.encode(), presented.encode())


def new_session(token: str, now: datetime) -> ConsoleSession:
    return ConsoleSession(token, int(now.timestamp()))


def read_session(cookie: str | None, now: datetime) -> ConsoleSession | None:
    """The session in `cookie`, or None when it is missing, altered or expired."""
    if not cookie:
        return None
    issued_text, _, rest = cookie.partition(":")
    token, _, mac = rest.rpartition(":")
    if not issued_text.isdigit() or not token or not mac:
        return None
    issued = int(issued_text)
    if not hmac.compare_digest(_mac(token, "session", issued).encode(), mac.encode()):
        return None
    age = now.timestamp() - issued
    if age < 0 or age >= SESSION_LIFETIME.total_seconds():
        return None
    return ConsoleSession(token, issued)


def login_csrf() -> str:
    return secrets.token_urlsafe(24)
