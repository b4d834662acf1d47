"""The console's sign-in: a user's API token exchanged for a server-side session.

The cookie holds a random session id, never the token: a copied cookie opens the console
for at most SESSION_LIFETIME and calls no API route, and the catalog keeps only the id's
SHA-256 (table console_sessions), so a copy of the database opens nothing. Each request
finds the session by that hash, then checks the token it stands for exactly as the API
checks a bearer token (archive.governance.auth: revoked, expired, disabled user refused),
so revoking a token or disabling its user ends its sessions at once. Sign-out deletes the
row. The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page
sends it) and Secure when the console is served over HTTPS. The forms' CSRF token is an
HMAC of the session id: it changes with every session and reveals nothing of the id.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from archive.catalog.models_governance import ConsoleSessionRow
from archive.governance.auth import aware

SESSION_COOKIE = "amana_session"
LOGIN_CSRF_COOKIE = "amana_login_csrf"
SESSION_LIFETIME = timedelta(hours=8)
_SID_BYTES = 32
_MAX_SID_CHARS = 64


def _sha256(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ConsoleSession:
    sid: str  # what the cookie holds; only its hash is stored
    token_id: str

    @property
    def csrf(self) -> str:
        return hmac.new(self.sid.encode(), b"csrf", hashlib.sha256).hexdigest()[:40]

    def csrf_ok(self, presented: str | None) -> bool:
        # Bytes: a non-ASCII str would make compare_digest raise instead of refuse.
        return presented is not None and hmac.compare_digest(self.csrf.encode(), presented.encode())


def open_session(db: Session, token_id: str, now: datetime) -> ConsoleSession:
    """A new session for `token_id`, stored in the caller's transaction; sessions of anyone
    that have expired are swept out on the way."""
    db.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.expires_at <= now))
    sid = secrets.token_urlsafe(_SID_BYTES)
    db.add(
        ConsoleSessionRow(
            sid_sha256=_sha256(sid),
            token_id=token_id,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    db.flush()
    return ConsoleSession(sid, token_id)


def find_session(db: Session, cookie: str | None, now: datetime) -> ConsoleSession | None:
    """The live session named by `cookie`, or None when it is missing, unknown, signed out
    or expired."""
    if not cookie or len(cookie) > _MAX_SID_CHARS:
        return None
    row = db.scalars(
        select(ConsoleSessionRow).where(ConsoleSessionRow.sid_sha256 == _sha256(cookie))
    ).first()
    if row is None or aware(row.expires_at) <= now:
        return None
    return ConsoleSession(cookie, row.token_id)


def close_session(db: Session, console_session: ConsoleSession) -> None:
    """Sign-out: the row goes, so the cookie names nothing any more."""
    db.execute(
        delete(ConsoleSessionRow).where(
            ConsoleSessionRow.sid_sha256 == _sha256(console_session.sid)
        )
    )


def login_csrf() -> str:
    return secrets.token_urlsafe(24)
