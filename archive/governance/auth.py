"""Bearer tokens and roles for the HTTP API (and the stewards' commands).

A token is `<token id>.<secret>`. The id is public and names the actor in audit events; the
catalog keeps only the SHA-256 of the secret, so a copy of the database cannot be used to
call the API. Every token belongs to one user (archive.governance.users): its role is the
user's role, read at each request, and it stops working when the user is disabled or when
it expires, so no token out-ranks or outlives the person who holds it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from anonymizer.errors import RejectError
from archive.catalog.models_governance import ApiToken, Role, User
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
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    TOKENS_WRITE = "tokens:write"
    # The ingest nodes' heartbeats, backlogs and rates: operations, no catalog content.
    NODES_READ = "nodes:read"
    DATASETS_READ = "datasets:read"
    DATASETS_WRITE = "datasets:write"
    DATASETS_EXPORT = "datasets:export"
    DATASETS_SEAL = "datasets:seal"
    DATASETS_EXPORT_SEALED = "datasets:export-sealed"


# Separation of duties: no role both changes the rules and reads the record of their use.
# The admin, who makes people and tokens, neither reads catalog data nor takes any part in
# a profile's four eyes, so minting tokens cannot buy a second pair of eyes. Auditors list
# users and tokens to turn an actor in the trail into a person.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.AUDITOR: frozenset(
        {
            Permission.CATALOG_READ,
            Permission.AUDIT_READ,
            Permission.QUARANTINE_READ,
            Permission.PROFILES_READ,
            Permission.SOURCES_READ,
            Permission.USERS_READ,
            Permission.NODES_READ,
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
        {
            Permission.SOURCES_READ,
            Permission.SOURCES_WRITE,
            Permission.USERS_READ,
            Permission.USERS_WRITE,
            Permission.TOKENS_WRITE,
            Permission.NODES_READ,
        }
    ),
    Role.RESEARCHER: frozenset(
        {Permission.DATASETS_READ, Permission.DATASETS_WRITE, Permission.DATASETS_EXPORT}
    ),
    # The certification body also makes the cohorts it then seals; exporting a sealed set is
    # its alone, and it exports nothing else, so held-out data has one way out.
    Role.CERTIFIER: frozenset(
        {
            Permission.DATASETS_READ,
            Permission.DATASETS_WRITE,
            Permission.DATASETS_SEAL,
            Permission.DATASETS_EXPORT_SEALED,
        }
    ),
}

DEFAULT_TOKEN_LIFETIME = timedelta(days=90)
MAX_TOKEN_LIFETIME = timedelta(days=365)
# Last use is a hint for auditors, not a log (the trail is the log): writing it at most
# once a minute keeps a busy token from turning every read into a row update.
LAST_USE_RESOLUTION = timedelta(minutes=1)
_LIFETIME = re.compile(r"^([1-9][0-9]{0,4})([dh])$")


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
    """Who is calling: the token (the actor in the trail) and the person behind it."""

    token_id: str
    role: Role
    user_id: int
    user: str

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise ForbiddenError(f"role {self.role.value} may not {permission.value}")


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def aware(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes for what was stored as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError as exc:
        roles = ", ".join(r.value for r in Role)
        raise RejectError(f"unknown role {value!r}; one of {roles}", code="bad_role") from exc


def parse_lifetime(value: str | None) -> timedelta:
    """`90d` or `12h`; the default when not given; never more than the maximum."""
    if value is None:
        return DEFAULT_TOKEN_LIFETIME
    match = _LIFETIME.match(value.strip().lower())
    if match is None:
        raise RejectError("expiry must look like 90d or 12h", code="bad_expiry")
    count, unit = int(match.group(1)), match.group(2)
    lifetime = timedelta(days=count) if unit == "d" else timedelta(hours=count)
    if lifetime > MAX_TOKEN_LIFETIME:
        raise RejectError(
            f"a token lives at most {MAX_TOKEN_LIFETIME.days} days", code="bad_expiry"
        )
    return lifetime


@dataclass(frozen=True)
class MintedToken:
    token_id: str
    token: str
    user: str
    role: Role
    expires_at: datetime


def create_token(
    session: Session,
    *,
    user: User,
    created_by: str,
    lifetime: timedelta = DEFAULT_TOKEN_LIFETIME,
    label: str | None = None,
) -> MintedToken:
    """Store a new token for `user`; the full token is in the answer only, never stored."""
    if user.disabled_at is not None:
        raise RejectError("the user is disabled", code="conflict")
    if lifetime > MAX_TOKEN_LIFETIME:
        raise RejectError(
            f"a token lives at most {MAX_TOKEN_LIFETIME.days} days", code="bad_expiry"
        )
    token_id = "tok_" + secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        ApiToken(
            token_id=token_id,
            secret_sha256=_sha256(secret),
            user_id=user.id,
            label=label,
            created_by=created_by,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return MintedToken(token_id, f"{token_id}.{secret}", user.name, user.role, now + lifetime)


def authenticate(session: Session, token: str | None) -> Principal:
    """The caller behind `token`, or AuthError: unknown, wrong, revoked, expired, or held by
    a disabled user. Notes the token's last use in the caller's transaction, which commits
    it together with the request's audit event."""
    if not token or "." not in token:
        raise AuthError()
    token_id, _, secret = token.partition(".")
    row = session.scalars(select(ApiToken).where(ApiToken.token_id == token_id)).first()
    # Compare even when the id is unknown so that timing does not tell ids apart.
    expected = row.secret_sha256 if row is not None else _sha256("")
    if not hmac.compare_digest(expected, _sha256(secret)) or row is None:
        raise AuthError("unknown or wrong token")
    return _usable(row)


def principal_of_token_id(session: Session, token_id: str) -> Principal:
    """The holder of `token_id`, checked as `authenticate` checks a presented token (revoked,
    expired, disabled user refused): for a console session, which stands for a token it
    never shows again."""
    row = session.scalars(select(ApiToken).where(ApiToken.token_id == token_id)).first()
    if row is None:
        raise AuthError("unknown token")
    return _usable(row)


def _usable(row: ApiToken) -> Principal:
    if row.revoked_at is not None:
        raise AuthError("token revoked")
    now = utcnow()
    if aware(row.expires_at) <= now:
        raise AuthError("token expired")
    if row.user.disabled_at is not None:
        raise AuthError("user disabled")
    if row.last_used_at is None or now - aware(row.last_used_at) >= LAST_USE_RESOLUTION:
        row.last_used_at = now
    return Principal(
        token_id=row.token_id, role=row.user.role, user_id=row.user_id, user=row.user.name
    )


def user_of_token(session: Session, token_id: str) -> int | None:
    """The id of the user who holds `token_id` (revoked and expired tokens included), so
    that a past proposal or approval still names a person."""
    return session.scalars(select(ApiToken.user_id).where(ApiToken.token_id == token_id)).first()


def revoke_token(session: Session, token_id: str) -> None:
    row = session.scalars(select(ApiToken).where(ApiToken.token_id == token_id)).first()
    if row is None:
        raise RejectError(f"no token {token_id}", code="not_found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()


def _iso(moment: datetime | None) -> str | None:
    return aware(moment).isoformat() if moment is not None else None


def list_tokens(session: Session) -> list[dict[str, object]]:
    """Every token with its holder: what an auditor needs to turn an actor into a person."""
    now = utcnow()
    return [
        {
            "token_id": t.token_id,
            "user": t.user.name,
            "role": t.user.role.value,
            "label": t.label,
            "created_by": t.created_by,
            "created_at": _iso(t.created_at),
            "expires_at": _iso(t.expires_at),
            "last_used_at": _iso(t.last_used_at),
            "revoked": t.revoked_at is not None,
            "expired": aware(t.expires_at) <= now,
        }
        for t in session.scalars(select(ApiToken).order_by(ApiToken.id))
    ]
