"""The audit trail for auditors: search (JSON, CSV, syslog) and chain verification."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.orm import Session

from archive import audit
from archive.api.deps import (
    ApiState,
    AuditContext,
    AuditDep,
    AuditReader,
    SessionDep,
    StateDep,
    filters_for_audit,
    unit,
)
from archive.api.params import MAX_DB_INT
from archive.api.schemas import AuditPage, VerifyOut

log = logging.getLogger(__name__)

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
    before_seq: Annotated[
        int | None,
        Query(ge=1, le=MAX_DB_INT, description="the next page: `next_before_seq` of this one"),
    ] = None,
    format: Annotated[Literal["json", "csv", "syslog"], Query()] = "json",
) -> AuditPage | Response:
    """Audit events newest first, a page at a time by sequence number; with `format` the
    whole matching trail (oldest first, up to the moment of the request) streamed as CSV
    or RFC 5424 syslog lines."""
    flt = audit.AuditFilter(event, actor, object_id, outcome, since, until)
    given = (
        {"outcome": outcome, "since": since, "until": until},
        {"event": event, "actor": actor, "object_id": object_id},
    )
    if format != "json":
        return _export(request, session, ctx, state, flt, format, given)
    ctx.set(
        audit.EventId.AUDIT_LOG_USED,
        audit.Action.READ,
        object_type="audit_log",
        object_id="audit",
        format=format,
        before_seq=before_seq,
    )
    with unit(request, ctx, session) as work:
        page = audit.search_page(session, flt, before_seq=before_seq, limit=limit)
        work.note(filters=filters_for_audit(bool(page.items), *given), rows=len(page.items))
    return AuditPage.model_validate(
        {"limit": limit, "items": page.items, "next_before_seq": page.next_before_seq}
    )


def _export(
    request: Request,
    session: Session,
    ctx: AuditContext,
    state: ApiState,
    flt: audit.AuditFilter,
    fmt: audit.ExportFormat,
    given: tuple[dict[str, Any], dict[str, Any]],
) -> StreamingResponse:
    """The export's own event is committed before the first byte goes out (an export nobody
    can see in the trail would be a read without a record); the rows are the trail up to
    that moment, so the export never lists its own event, and they are read page by page on
    a session of their own that lives as long as the stream."""
    ctx.set(
        audit.EventId.AUDIT_LOG_USED,
        audit.Action.READ,
        object_type="audit_log",
        object_id="audit",
        format=fmt,
    )
    with unit(request, ctx, session) as work:
        head = audit.latest_seq(session)
        flt = dataclasses.replace(flt, to_seq=head)
        matched = audit.count(session, flt)
        work.note(filters=filters_for_audit(matched > 0, *given), total=matched, to_seq=head)

        pinned = audit.head_at(session, head)

    def chunks() -> Iterator[str]:
        with state.sessions() as reader:
            yield from audit.iter_export(reader, flt, fmt, state.hostname, head=pinned)

    stream = StreamingResponse(chunks(), media_type=audit.MEDIA_TYPES[fmt])
    # The head the export closes with, also where a client reads it before the body.
    stream.headers["X-Amana-Audit-Head"] = f"{pinned[0]}:{pinned[1]}"
    if fmt == "csv":
        stream.headers["Content-Disposition"] = 'attachment; filename="audit.csv"'
    return stream


@router.get("/audit/verify", response_model=VerifyOut)
def audit_verify(
    request: Request, session: SessionDep, ctx: AuditDep, _who: AuditReader
) -> VerifyOut:
    """Walk the hash chain and compare its end with the head row, the anchor file and the
    catalog's jobs: intact, truncated, broken or anchor missing, always as a report."""
    ctx.set(
        audit.EventId.AUDIT_LOG_USED,
        audit.Action.EXECUTE,
        object_type="audit_log",
        object_id="verify",
    )
    report: audit.VerifyReport | None = None
    recorded = True
    try:
        with unit(request, ctx, session) as work:
            report = audit.verify(session)
            work.note(ok=report.ok, checked=report.checked, verdict=report.status.value)
    except Exception as exc:
        if report is None:
            raise
        # The report matters most when the trail is damaged, which is also when its own
        # record may be refused (head row gone): the answer is given, saying it was not
        # recorded, and the log says why. It holds sequence numbers and hashes only.
        log.error("audit verification not recorded: %s", type(exc).__name__)
        ctx.recorded = True
        recorded = False
    return VerifyOut.model_validate({**report.as_dict(), "recorded": recorded})
