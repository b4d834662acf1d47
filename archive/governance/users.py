"""The people who hold tokens: added, listed, re-roled and disabled by an admin.

Four eyes counts users (archive.governance.versions), so the rules here are what keep one
person from becoming two: a role belongs to the user and every token of theirs carries it,
nobody changes their own role or mints a token with a role that is not their user's, and a
disabled user's tokens stop at once. Only an admin does any of this over HTTP; on the server
the command line does it under the operator's login (that is how the first admin is made).
"""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from anonymizer.errors import RejectError
from archive.catalog.models_governance import Role, User
from archive.governance.auth import (
    DEFAULT_TOKEN_LIFETIME,
    ForbiddenError,
    MintedToken,
    Principal,
    aware,
    create_token,
)
from archive.work.jobs import utcnow

# Staff names or handles, never patient data; the migration uses the same shape.
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def check_name(name: str) -> str:
    if not USER_NAME.match(name):
        raise RejectError(
            "a user name is 1-64 letters, digits, '.', '_', '@' or '-'", code="bad_name"
        )
    return name


def get_user(session: Session, name: str) -> User:
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise RejectError("no such user", code="not_found")
    return user


def add_user(session: Session, *, name: str, role: Role, created_by: str) -> User:
    check_name(name)
    if session.scalars(select(User.id).where(User.name == name)).first() is not None:
        raise RejectError("a user of that name exists", code="conflict")
    user = User(name=name, role=role, created_by=created_by, created_at=utcnow())
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError as exc:
        raise RejectError("a user of that name exists", code="conflict") from exc
    return user


def set_role(session: Session, name: str, role: Role, by: Principal | None) -> User:
    """A new role for a user, and so for all their tokens; never one's own."""
    user = get_user(session, name)
    if by is not None and by.user_id == user.id:
        raise ForbiddenError("nobody changes their own role")
    user.role = role
    return user


def disable_user(session: Session, name: str) -> User:
    """The user's tokens are refused from their next request on; the row stays, so that the
    trail's actors still lead to a person."""
    user = get_user(session, name)
    if user.disabled_at is None:
        user.disabled_at = utcnow()
    return user


def mint_for(
    session: Session,
    *,
    name: str,
    by: Principal | None,
    created_by: str,
    lifetime: timedelta = DEFAULT_TOKEN_LIFETIME,
    label: str | None = None,
    role: Role | None = None,
) -> MintedToken:
    """A token for user `name`. `role`, when given, must be the user's: a token carries its
    user's role, and asking for another one for oneself is a request for privilege."""
    user = get_user(session, name)
    if role is not None and role != user.role:
        if by is not None and by.user_id == user.id:
            raise ForbiddenError("nobody gives themselves another role")
        raise RejectError(
            f"the user's role is {user.role.value}; a token carries its user's role",
            code="conflict",
        )
    return create_token(session, user=user, created_by=created_by, lifetime=lifetime, label=label)


def list_users(session: Session) -> list[dict[str, object]]:
    now = utcnow()
    rows: list[dict[str, object]] = []
    for user in session.scalars(select(User).order_by(User.id)):
        live = [t for t in user.tokens if t.revoked_at is None and aware(t.expires_at) > now]
        used = [aware(t.last_used_at) for t in user.tokens if t.last_used_at is not None]
        rows.append(
            {
                "id": user.id,
                "name": user.name,
                "role": user.role.value,
                "created_by": user.created_by,
                "created_at": aware(user.created_at).isoformat() if user.created_at else None,
                "disabled": user.disabled_at is not None,
                "tokens": [t.token_id for t in user.tokens],
                "live_tokens": len(live),
                "last_used_at": max(used).isoformat() if used else None,
            }
        )
    return rows
