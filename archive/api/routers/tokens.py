"""API bearer tokens, for admins: mint, list, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from anonymizer.errors import RejectError
from archive import audit
from archive.api.deps import TOKEN_ID, AuditContext, AuditDep, SessionDep, TokenAdmin, unit
from archive.api.schemas import TokenCreated, TokenIn, TokenOut
from archive.governance.auth import create_token, list_tokens, parse_role, revoke_token

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
    """A new token; the secret is shown in this answer only."""
    _token_change(ctx, audit.Action.CREATE)
    with unit(request, ctx, session) as work:
        token_id, token = create_token(
            session, role=parse_role(body.role), created_by=who.token_id, label=body.label
        )
        work.note(object_id=token_id, role=body.role)
    return TokenCreated(token_id=token_id, role=body.role, token=token)


@router.get("/tokens", response_model=list[TokenOut])
def tokens(
    request: Request, session: SessionDep, ctx: AuditDep, _who: TokenAdmin
) -> list[TokenOut]:
    """Every token: id, role, label, who created it, revoked or not (never a secret)."""
    ctx.set(audit.EventId.QUERY, audit.Action.EXECUTE, object_type="token")
    with unit(request, ctx, session):
        rows = list_tokens(session)
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
