"""Sources and users: admins register, disable and enable sources, add and disable users,
mint and revoke tokens; auditors (who turn an actor into a person) read the lists. Every
change is the API's own step (archive/api/admin_steps.py), audited the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from anonymizer.errors import RejectError
from archive import audit
from archive.api import admin_steps as steps
from archive.api.deps import AuditDep, SessionDep, StateDep, unit
from archive.api.errors import http_status
from archive.console.session import ConsoleSession
from archive.console.web import PREFIX, Console, ConsoleDep, page, require_csrf
from archive.governance.auth import ROLE_PERMISSIONS, Permission, Principal, list_tokens
from archive.governance.sources import list_sources
from archive.governance.users import list_users

router = APIRouter(prefix=PREFIX, include_in_schema=False)

Who = tuple[Principal, ConsoleSession]
SourceRead = Annotated[Who, Depends(page(Permission.SOURCES_READ))]
SourceWrite = Annotated[Who, Depends(page(Permission.SOURCES_WRITE))]
UserRead = Annotated[Who, Depends(page(Permission.USERS_READ))]
UserWrite = Annotated[Who, Depends(page(Permission.USERS_WRITE))]
TokenWrite = Annotated[Who, Depends(page(Permission.TOKENS_WRITE))]
Csrf = Annotated[str, Form(max_length=100)]
Field = Annotated[str, Form(max_length=64)]
Optional = Annotated[str | None, Form(max_length=64)]
Confirm = Annotated[str | None, Form(max_length=8)]
ROLES = [role.value for role in ROLE_PERMISSIONS]


def _blank(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


def _sources_page(
    request: Request, console: Console, session: Session, who: Who, **extra: Any
) -> Response:
    rows = list_sources(session)
    return console.render(
        request, "sources.html", principal=who[0], session=who[1], rows=rows, **extra
    )


def _users_page(
    request: Request, console: Console, session: Session, who: Who, **extra: Any
) -> Response:
    return console.render(
        request,
        "users.html",
        principal=who[0],
        session=who[1],
        rows=list_users(session),
        tokens=list_tokens(session),
        roles=ROLES,
        **extra,
    )


def _or_page_again(
    change: Callable[[], object], again: Callable[..., Response], back: str
) -> Response:
    """Run an admin step; a refusal (recorded by the step) shows the page again with the
    reason, the way the command line prints it, instead of a bare error."""
    try:
        change()
    except RejectError as refusal:
        if refusal.code in ("unauthenticated", "forbidden"):
            raise
        return again(error=str(refusal), status_code=http_status(refusal))
    return RedirectResponse(f"{PREFIX}/{back}", status_code=303)


@router.get("/sources")
def sources(
    request: Request, session: SessionDep, ctx: AuditDep, console: ConsoleDep, who: SourceRead
) -> Response:
    ctx.set(audit.EventId.QUERY, audit.Action.EXECUTE, object_type="source")
    with unit(request, ctx, session):
        return _sources_page(request, console, session, who, error=None)


@router.post("/sources")
def add_source(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    console: ConsoleDep,
    state: StateDep,
    who: SourceWrite,
    csrf: Csrf,
    ae_title: Annotated[str, Form(max_length=16)],
    address: Field,
    site: Optional = None,
    region: Optional = None,
    profile: Optional = None,
) -> Response:
    require_csrf(who[1], csrf)
    return _or_page_again(
        lambda: steps.add_source(
            request,
            ctx,
            session,
            state,
            ae_title=ae_title.strip(),
            address=address.strip(),
            site=_blank(site),
            region=_blank(region),
            profile=_blank(profile),
        ),
        lambda **e: _sources_page(request, console, session, who, **e),
        "sources",
    )


@router.post("/sources/{ae_title}/enabled")
def set_source_enabled(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    console: ConsoleDep,
    state: StateDep,
    who: SourceWrite,
    ae_title: str,
    csrf: Csrf,
    enabled: Annotated[str, Form(pattern="^(yes|no)$")],
) -> Response:
    """Disable (refused at its next association) or enable a source."""
    require_csrf(who[1], csrf)
    return _or_page_again(
        lambda: steps.edit_source(request, ctx, session, state, ae_title, enabled=enabled == "yes"),
        lambda **e: _sources_page(request, console, session, who, **e),
        "sources",
    )


@router.get("/users")
def users(
    request: Request, session: SessionDep, ctx: AuditDep, console: ConsoleDep, who: UserRead
) -> Response:
    ctx.set(audit.EventId.QUERY, audit.Action.EXECUTE, object_type="user")
    with unit(request, ctx, session):
        return _users_page(request, console, session, who, error=None, minted=None)


@router.post("/users")
def add_user(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    console: ConsoleDep,
    who: UserWrite,
    csrf: Csrf,
    name: Field,
    role: Annotated[str, Form(max_length=16)],
) -> Response:
    require_csrf(who[1], csrf)
    return _or_page_again(
        lambda: steps.new_user(request, ctx, session, who[0], name.strip(), role),
        lambda **e: _users_page(request, console, session, who, minted=None, **e),
        "users",
    )


@router.post("/users/{name}/disable")
def disable_user(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    console: ConsoleDep,
    who: UserWrite,
    name: str,
    csrf: Csrf,
    confirm: Confirm = None,
) -> Response:
    """Every token of the user is refused from its next request on (console sessions
    included)."""
    require_csrf(who[1], csrf)

    return _or_page_again(
        lambda: steps.disable(request, ctx, session, name, confirmed=confirm == "yes"),
        lambda **e: _users_page(request, console, session, who, minted=None, **e),
        "users",
    )


@router.post("/tokens")
def mint_token(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    console: ConsoleDep,
    who: TokenWrite,
    csrf: Csrf,
    user: Field,
    expires: Annotated[str | None, Form(max_length=8)] = None,
    label: Optional = None,
) -> Response:
    """A token for a user: its secret is on this one answer (not cached), never again."""
    require_csrf(who[1], csrf)
    try:
        minted = steps.mint_token(
            request, ctx, session, who[0], user=user, expires=_blank(expires), label=_blank(label)
        )
    except RejectError as refusal:
        if refusal.code in ("unauthenticated", "forbidden"):
            raise
        return _users_page(
            request,
            console,
            session,
            who,
            minted=None,
            error=str(refusal),
            status_code=http_status(refusal),
        )
    return _users_page(request, console, session, who, minted=minted, error=None)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    console: ConsoleDep,
    who: TokenWrite,
    token_id: str,
    csrf: Csrf,
    confirm: Confirm = None,
) -> Response:
    """Its next request is refused, and the console sessions it opened end."""
    require_csrf(who[1], csrf)

    return _or_page_again(
        lambda: steps.revoke_token(request, ctx, session, token_id, confirmed=confirm == "yes"),
        lambda **e: _users_page(request, console, session, who, minted=None, **e),
        "users",
    )
