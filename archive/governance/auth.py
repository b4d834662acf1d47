"""Bearer tokens and roles for the HTTP API.

A token is `<token id>.<secret>`. The id is public and names the actor in audit events; the
catalog keeps only the SHA-256 of the secret, so a copy of the database cannot be used to
call the API.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from anonymizer.errors import RejectError
from archive.catalog.models_governance import ApiToken, Role
from archive.work.jobs import utcnow


class Permission(StrEnum):
    CATALOG_READ = "catalog:read"
    AUDIT_READ = "audit:read"
    QUARANTINE_READ = "quarantine:read"
    QUARANTINE_WRITE = "quarantine:write"
    PROFILES_READ = "profiles:read"
    PROFILES_WRITE = "profiles:write"
    SOURCES_READ = "sources:read"
    SOURCES_WRITE = "sources:write"
    TOKENS_WRITE = "tokens:write"


# Separation of duties: no role both changes the rules and reads the record of their use,
# and the admin who mints tokens sees no catalog data.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.AUDITOR: frozenset(
        {
            Permission.CATALOG_READ,
            Permission.AUDIT_READ,
            Permission.QUARANTINE_READ,
            Permission.PROFILES_READ,
            Permission.SOURCES_READ,
        }
    ),
    Role.STEWARD: frozenset(
        {
            Permission.PROFILES_READ,
            Permission.PROFILES_WRITE,
            Permission.QUARANTINE_READ,
            Permission.QUARANTINE_WRITE,
        }
    ),
    Role.ADMIN: frozenset(
        {Permission.SOURCES_READ, Permission.SOURCES_WRITE, Permission.TOKENS_WRITE}
    ),
}


class AuthError(RejectError):
    """No usable credentials (HTTP 401)."""

    def __init__(self, message: str = "a valid bearer token is required") -> None:
        super().__init__(message, code="unauthenticated")


class ForbiddenError(RejectError):
    """Valid credentials without the needed permission (HTTP 403)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="forbidden")


@dataclass(frozen=True)
class Principal:
    token_id: str
    role: Role

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise ForbiddenError(f"role {self.role.value} may not {permission.value}")


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError as exc:
        roles = ", ".join(r.value for r in Role)
        raise RejectError(f"unknown role {value!r}; one of {roles}", code="bad_role") from exc


def create_token(
    session: Session, *, role: Role, created_by: str, label: str | None = None
) -> tuple[str, str]:
    """Store a new token and return (token id, full token). The token is shown only once."""
    token_id = "tok_" + secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            token_id=token_id,
            secret_sha256=_sha256(secret),
            role=role,
            label=label,
            created_by=created_by,
            created_at=utcnow(),
        )
    )
    session.flush()
    return token_id, f"{token_id}.{secret}"


def authenticate(session: Session, token: str | None) -> Principal:
    if not token or "." not in token:
        raise AuthError()
    token_id, _, secret = token.partition(".")
    row = session.scalars(select(ApiToken).where(ApiToken.token_id == token_id)).first()
    # Compare even when the id is unknown so that timing does not tell ids apart.
    expected = row.secret_sha256 if row is not None else _sha256("")
    if not hmac.compare_digest(expected, _sha256(secret)) or row is None:
        raise AuthError("unknown or wrong token")
    if row.revoked_at is not None:
        raise AuthError("token revoked")
    return Principal(token_id=row.token_id, role=row.role)


def revoke_token(session: Session, token_id: str) -> None:
    row = session.scalars(select(ApiToken).where(ApiToken.token_id == token_id)).first()
    if row is None:
        raise RejectError(f"no token {token_id}", code="not_found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()


def list_tokens(session: Session) -> list[dict[str, object]]:
    return [
        {
            "token_id": t.token_id,
            "role": t.role.value,
            "label": t.label,
            "created_by": t.created_by,
            "created_at": t.created_at.isoformat() if t.created_at else None,
            "revoked": t.revoked_at is not None,
        }
        for t in session.scalars(select(ApiToken).order_by(ApiToken.id))
    ]
