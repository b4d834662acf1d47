"""The people behind the tokens: admins add, re-role and disable them; auditors (and
admins) list them. Four eyes counts these users, never tokens."""

from __future__ import annotations

from fastapi import APIRouter, Request

from archive import audit
from archive.api.deps import AuditContext, AuditDep, SessionDep, UserAdmin, UserReader, unit
from archive.api.schemas import UserIn, UserOut, UserRoleIn
from archive.governance.auth import parse_role
from archive.governance.users import USER_NAME, add_user, disable_user, list_users, set_role

router = APIRouter(tags=["users"])


def _user_change(ctx: AuditContext, action: audit.Action, name: str) -> None:
    ctx.set(
        audit.EventId.SECURITY_ALERT,
        action,
        event_type=audit.EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
        object_type="user",
        # A staff name an admin typed, not patient data; a malformed one is left out.
        object_id=name if USER_NAME.match(name) else None,
    )


def _one(session: SessionDep, name: str) -> UserOut:
    return UserOut.model_validate(next(r for r in list_users(session) if r["name"] == name))


@router.get("/users", response_model=list[UserOut])
def users(request: Request, session: SessionDep, ctx: AuditDep, _who: UserReader) -> list[UserOut]:
    """Every user: name, role, tokens, disabled or not, last use of any of their tokens."""
    ctx.set(audit.EventId.QUERY, audit.Action.EXECUTE, object_type="user")
    with unit(request, ctx, session) as work:
        rows = list_users(session)
        work.note(rows=len(rows))
    return [UserOut.model_validate(row) for row in rows]


@router.post("/users", status_code=201, response_model=UserOut)
def add(
    request: Request, session: SessionDep, ctx: AuditDep, who: UserAdmin, body: UserIn
) -> UserOut:
    """A new user with one role; tokens are then minted for them (`POST /tokens`)."""
    _user_change(ctx, audit.Action.CREATE, body.name)
    with unit(request, ctx, session) as work:
        role = parse_role(body.role)
        add_user(session, name=body.name, role=role, created_by=who.token_id)
        work.note(role=role.value)
        out = _one(session, body.name)
    return out


@router.put("/users/{name}/role", response_model=UserOut)
def change_role(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    who: UserAdmin,
    name: str,
    body: UserRoleIn,
) -> UserOut:
    """A user's new role, for all their tokens at once; nobody changes their own."""
    _user_change(ctx, audit.Action.UPDATE, name)
    with unit(request, ctx, session) as work:
        role = parse_role(body.role)
        set_role(session, name, role, who)
        work.note(role=role.value)
        out = _one(session, name)
    return out


@router.post("/users/{name}/disable", response_model=UserOut)
def disable(
    request: Request, session: SessionDep, ctx: AuditDep, _who: UserAdmin, name: str
) -> UserOut:
    """Disable a user: every token of theirs is refused from its next request on."""
    _user_change(ctx, audit.Action.UPDATE, name)
    with unit(request, ctx, session) as work:
        disable_user(session, name)
        work.note(disabled=True)
        out = _one(session, name)
    return out
