"""API bearer tokens: admins mint and revoke them for named users; auditors (and admins)
list them, to turn an actor in the trail into a person."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from anonymizer.errors import RejectError
from archive import audit
from archive.api.deps import (
    TOKEN_ID,
    AuditContext,
    AuditDep,
    SessionDep,
    TokenAdmin,
    UserReader,
    unit,
)
from archive.api.schemas import TokenCreated, TokenIn, TokenOut
from archive.governance.auth import list_tokens, parse_lifetime, parse_role, revoke_token
from archive.governance.users import mint_for

router = APIRouter(tags=["tokens"])


def _token_change(ctx: AuditContext, action: audit.Action) -> None:
    ctx.set(
        audit.EventId.SECURITY_ALERT,
        action,
        event_type=audit.EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
        object_type="token",
    )


@router.post("/tokens", status_code=201, response_model=TokenCreated)
def mint_token(
    request: Request, session: SessionDep, ctx: AuditDep, who: TokenAdmin, body: TokenIn
) -> TokenCreated:
    """A new token for a user, with the user's role; the secret is shown in this answer only."""
    _token_change(ctx, audit.Action.CREATE)
    with unit(request, ctx, session) as work:
        minted = mint_for(
            session,
            name=body.user,
            by=who,
            created_by=who.token_id,
            lifetime=parse_lifetime(body.expires),
            label=body.label,
            role=parse_role(body.role) if body.role is not None else None,
        )
        work.note(object_id=minted.token_id, role=minted.role.value, user=minted.user)
    return TokenCreated(
        token_id=minted.token_id,
        user=minted.user,
        role=minted.role.value,
        expires_at=minted.expires_at.isoformat(),
        token=minted.token,
    )


@router.get("/tokens", response_model=list[TokenOut])
def tokens(
    request: Request, session: SessionDep, ctx: AuditDep, _who: UserReader
) -> list[TokenOut]:
    """Every token: id, holder, role, expiry, last use, revoked or not (never a secret)."""
    ctx.set(audit.EventId.QUERY, audit.Action.EXECUTE, object_type="token")
    with unit(request, ctx, session) as work:
        rows = list_tokens(session)
        work.note(rows=len(rows))
    return [TokenOut.model_validate(row) for row in rows]


@router.delete("/tokens/{token_id}", status_code=204, response_class=Response)
def revoke(
    request: Request, session: SessionDep, ctx: AuditDep, _who: TokenAdmin, token_id: str
) -> Response:
    """Revoke a token: its next request is answered 401."""
    _token_change(ctx, audit.Action.DELETE)
    with unit(request, ctx, session) as work:
        if not TOKEN_ID.match(token_id):
            raise RejectError("no such token", code="not_found")
        revoke_token(session, token_id)
        work.note(object_id=token_id)
    return Response(status_code=204)
