"""The people behind the tokens: admins add, re-role and disable them; auditors (and
admins) list them. Four eyes counts these users, never tokens."""

from __future__ import annotations

from fastapi import APIRouter, Request

from archive import audit
from archive.api import admin_steps as steps
from archive.api.deps import AuditDep, SessionDep, UserAdmin, UserReader, unit
from archive.api.schemas import UserIn, UserOut, UserRoleIn
from archive.governance.users import list_users

router = APIRouter(tags=["users"])


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
    return UserOut.model_validate(steps.new_user(request, ctx, session, who, body.name, body.role))


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
    return UserOut.model_validate(steps.change_role(request, ctx, session, who, name, body.role))


@router.post("/users/{name}/disable", response_model=UserOut)
def disable(
    request: Request, session: SessionDep, ctx: AuditDep, _who: UserAdmin, name: str
) -> UserOut:
    """Disable a user: every token of theirs is refused from its next request on."""
    return UserOut.model_validate(steps.disable(request, ctx, session, name))
