"""API bearer tokens: admins mint and revoke them for named users; auditors (and admins)
list them, to turn an actor in the trail into a person."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from archive import audit
from archive.api import admin_steps as steps
from archive.api.deps import (
    AuditContext,
    AuditDep,
    SessionDep,
    TokenAdmin,
    UserReader,
    unit,
)
from archive.api.schemas import TokenCreated, TokenIn, TokenOut
from archive.governance.auth import list_tokens

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
    minted = steps.mint_token(
        request,
        ctx,
        session,
        who,
        user=body.user,
        expires=body.expires,
        label=body.label,
        role=body.role,
    )
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
    steps.revoke_token(request, ctx, session, token_id)
    return Response(status_code=204)
