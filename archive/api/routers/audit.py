"""The audit trail for auditors: search (JSON, CSV, syslog) and chain verification."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response

from archive import audit
from archive.api.deps import (
    AuditDep,
    AuditReader,
    SessionDep,
    StateDep,
    csv_response,
    filters_for_audit,
    unit,
)
from archive.api.schemas import AuditPage, VerifyOut
from archive.catalog import search

router = APIRouter(tags=["audit"])

Since = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}[T0-9:.Z]*$")]


@router.get(
    "/audit",
    response_model=AuditPage,
    responses={
        200: {
            "description": "JSON; CSV with `format=csv`; RFC 5424 lines with `format=syslog`",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}},
            },
        }
    },
)
def audit_search(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    state: StateDep,
    _who: AuditReader,
    event: Annotated[str | None, Query(max_length=64, description="code or name")] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    object_id: Annotated[str | None, Query(max_length=128)] = None,
    outcome: Annotated[int | None, Query(ge=0, le=12)] = None,
    since: Since = None,
    until: Since = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    format: Annotated[Literal["json", "csv", "syslog"], Query()] = "json",
) -> AuditPage | Response:
    """Audit events in chain order; CSV or RFC 5424 syslog lines with `format`."""
    flt = audit.AuditFilter(event, actor, object_id, outcome, since, until)
    total, items = audit.search(session, flt, limit=limit, offset=offset)
    filters = filters_for_audit(
        total > 0,
        {"outcome": outcome, "since": since, "until": until},
        {"event": event, "actor": actor, "object_id": object_id},
    )
    ctx.set(
        audit.EventId.AUDIT_LOG_USED,
        audit.Action.READ,
        object_type="audit_log",
        object_id="audit",
        filters=filters,
        total=total,
        format=format,
    )
    # The export is read in the same transaction as its record, before the record's row:
    # an export never lists its own event (as before, when the record came after the answer).
    body: Response | None = None
    with unit(request, ctx, session):
        if format == "csv":
            rows = [audit.event_row(e) for e in audit.iter_events(session, flt)]
            body = csv_response(search.to_csv(rows, audit.AUDIT_COLUMNS), "audit.csv")
        elif format == "syslog":
            lines = [
                audit.to_syslog(e, hostname=state.hostname) for e in audit.iter_events(session, flt)
            ]
            body = PlainTextResponse("".join(line + "\n" for line in lines))
    if body is not None:
        return body
    return AuditPage.model_validate(
        {"total": total, "limit": limit, "offset": offset, "items": items}
    )


@router.get("/audit/verify", response_model=VerifyOut)
def audit_verify(
    request: Request, session: SessionDep, ctx: AuditDep, _who: AuditReader
) -> VerifyOut:
    """Walk the hash chain; every changed, deleted or reordered row is named."""
    ctx.set(
        audit.EventId.AUDIT_LOG_USED,
        audit.Action.EXECUTE,
        object_type="audit_log",
        object_id="verify",
    )
    with unit(request, ctx, session) as work:
        report = audit.verify(session)
        work.note(ok=report.ok, checked=report.checked)
    return VerifyOut.model_validate(report.as_dict())
