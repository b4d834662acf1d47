"""The admins' steps on sources, users and tokens, one function each, shared by the API's
routes and the console's forms: the audit event (the object named only when well formed:
configuration an admin typed, kept even when refused), the governance call and its record
in one transaction. They return plain rows; each caller answers in its own way."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from anonymizer.errors import RejectError
from archive import audit
from archive.api.deps import TOKEN_ID, ApiState, AuditContext, unit
from archive.governance import sources
from archive.governance.auth import MintedToken, Principal, parse_lifetime, parse_role
from archive.governance.auth import revoke_token as revoke
from archive.governance.users import (
    USER_NAME,
    add_user,
    disable_user,
    list_users,
    mint_for,
    set_role,
)


def _node_change(ctx: AuditContext, action: audit.Action, ae_title: str) -> None:
    ctx.set(
        audit.EventId.SECURITY_ALERT,
        action,
        event_type=audit.EventType.NETWORK_CONFIGURATION,
        object_type="node",
        object_id=ae_title if sources.AE_TITLE.match(ae_title) else None,
    )


def _user_change(ctx: AuditContext, action: audit.Action, name: str | None) -> None:
    ctx.set(
        audit.EventId.SECURITY_ALERT,
        action,
        event_type=audit.EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
        object_type="user",
        # A staff name an admin typed, not patient data; a malformed one is left out.
        object_id=name if name is not None and USER_NAME.match(name) else None,
    )


def _token_change(ctx: AuditContext, action: audit.Action) -> None:
    ctx.set(
        audit.EventId.SECURITY_ALERT,
        action,
        event_type=audit.EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
        object_type="token",
    )


def add_source(
    request: Request,
    ctx: AuditContext,
    session: Session,
    state: ApiState,
    *,
    ae_title: str,
    address: str,
    profile: str | None = None,
    site: str | None = None,
    region: str | None = None,
    cert_sha256: str | None = None,
    cert_cn: str | None = None,
) -> dict[str, Any]:
    """Register a PACS (its profile and region must exist)."""
    _node_change(ctx, audit.Action.CREATE, ae_title)
    with unit(request, ctx, session) as work:
        src = sources.add_source(
            session,
            ae_title=ae_title,
            address=address,
            profile_name=profile,
            site=site,
            region=region,
            profiles_dir=state.profiles_dir,
            cert_sha256=cert_sha256,
            cert_cn=cert_cn,
        )
        work.note(**sources.registration_detail(src))
        return sources.source_row(src)


def edit_source(
    request: Request,
    ctx: AuditContext,
    session: Session,
    state: ApiState,
    ae_title: str,
    *,
    enabled: bool | None = None,
    **fields: str | None,
) -> dict[str, Any]:
    """Change a source's settings (`fields`: profile_name, region, address, site,
    cert_sha256, cert_cn; None unchanged) and/or disable or enable it."""
    _node_change(ctx, audit.Action.UPDATE, ae_title)
    with unit(request, ctx, session) as work:
        src, changes = sources.edit_source(session, ae_title, state.profiles_dir, **fields)
        if enabled is not None and enabled != src.enabled:
            changes["enabled"] = [src.enabled, enabled]
            sources.set_enabled(session, ae_title, enabled)
        work.note(object_id=src.ae_title, changes=changes)
        return sources.source_row(src)


def remove_source(request: Request, ctx: AuditContext, session: Session, ae_title: str) -> None:
    _node_change(ctx, audit.Action.DELETE, ae_title)
    with unit(request, ctx, session) as work:
        sources.remove_source(session, ae_title)
        work.note(object_id=ae_title)


def _user_row(session: Session, name: str) -> dict[str, object]:
    return next(r for r in list_users(session) if r["name"] == name)


def new_user(
    request: Request, ctx: AuditContext, session: Session, who: Principal, name: str, role: str
) -> dict[str, object]:
    """A new user with one role."""
    _user_change(ctx, audit.Action.CREATE, name)
    with unit(request, ctx, session) as work:
        parsed = parse_role(role)
        add_user(session, name=name, role=parsed, created_by=who.token_id)
        work.note(role=parsed.value)
        return _user_row(session, name)


def change_role(
    request: Request, ctx: AuditContext, session: Session, who: Principal, name: str, role: str
) -> dict[str, object]:
    """A user's new role, for all their tokens at once; nobody changes their own."""
    _user_change(ctx, audit.Action.UPDATE, name)
    with unit(request, ctx, session) as work:
        parsed = parse_role(role)
        set_role(session, name, parsed, who)
        work.note(role=parsed.value)
        return _user_row(session, name)


def _confirm(confirmed: bool) -> None:
    """The console's confirmation box, checked after the step's event is declared so that
    an unconfirmed attempt is recorded as refused."""
    if not confirmed:
        raise RejectError("confirm first", code="bad_request")


def disable(
    request: Request, ctx: AuditContext, session: Session, name: str, *, confirmed: bool = True
) -> dict[str, object]:
    """Every token of the user is refused from its next request on."""
    _user_change(ctx, audit.Action.UPDATE, name)
    _confirm(confirmed)
    with unit(request, ctx, session) as work:
        disable_user(session, name)
        work.note(disabled=True)
        return _user_row(session, name)


def mint_token(
    request: Request,
    ctx: AuditContext,
    session: Session,
    who: Principal,
    *,
    user: str,
    expires: str | None = None,
    label: str | None = None,
    role: str | None = None,
) -> MintedToken:
    """A new token for `user` with the user's role; its secret is in the answer only."""
    _token_change(ctx, audit.Action.CREATE)
    with unit(request, ctx, session) as work:
        minted = mint_for(
            session,
            name=user,
            by=who,
            created_by=who.token_id,
            lifetime=parse_lifetime(expires),
            label=label,
            role=parse_role(role) if role is not None else None,
        )
        work.note(object_id=minted.token_id, role=minted.role.value, user=minted.user)
        return minted


def revoke_token(
    request: Request, ctx: AuditContext, session: Session, token_id: str, *, confirmed: bool = True
) -> None:
    """Its next request is refused (and every console session standing for it ends)."""
    _token_change(ctx, audit.Action.DELETE)
    _confirm(confirmed)
    with unit(request, ctx, session) as work:
        if not TOKEN_ID.match(token_id):
            raise RejectError("no such token", code="not_found")
        revoke(session, token_id)
        work.note(object_id=token_id)
