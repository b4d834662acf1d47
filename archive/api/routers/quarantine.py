"""Quarantine: auditors list and open entries; stewards retry or purge held originals."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from anonymizer.errors import RetryableError
from archive import audit
from archive.api.deps import (
    CSV_ANSWER,
    MAX_EXPORT_ROWS,
    AuditDep,
    QuarantineReader,
    QuarantineWriter,
    SessionDep,
    StateDep,
    csv_response,
    filters_for_audit,
    unit,
)
from archive.api.params import Offset, RowId
from archive.api.schemas import PurgeOut, QuarantineDetail, QuarantinePage, RetryOut
from archive.catalog import search
from archive.catalog.csv_rows import to_csv
from archive.work import quarantine as quarantine_ops
from archive.work.publish import enqueue_after_commit

router = APIRouter(tags=["quarantine"])


@router.get("/quarantine", response_model=QuarantinePage, responses=CSV_ANSWER)
def quarantine(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    _who: QuarantineReader,
    reason: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[Literal["HELD", "RETRIED", "RELEASED", "PURGED"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> QuarantinePage | Response:
    """Instances held back, with reason code and a message free of patient data."""
    flt = search.QuarantineFilter(reason, status)
    csv = format == "csv"
    if csv:
        ctx.set(
            audit.EventId.EXPORT,
            audit.Action.READ,
            object_type="quarantine",
            object_id="quarantine",
            format="csv",
        )
    else:
        ctx.set(
            audit.EventId.QUERY,
            audit.Action.EXECUTE,
            object_type="quarantine",
            object_id="quarantine",
        )
    with unit(request, ctx, session) as work:
        if csv:
            total, rows = search.search_quarantine(session, flt, limit=MAX_EXPORT_ROWS)
        else:
            total, rows = search.search_quarantine(session, flt, limit=limit, offset=offset)
        filters = filters_for_audit(total > 0, {"status": status}, {"reason": reason})
        if csv:
            work.note(filters=filters, rows=len(rows))
        else:
            work.note(filters=filters, total=total)
    if csv:
        return csv_response(to_csv(rows, search.QUARANTINE_COLUMNS), "quarantine.csv")
    return QuarantinePage.model_validate(
        {"total": total, "limit": limit, "offset": offset, "items": rows}
    )


@router.get("/quarantine/{entry_id}", response_model=QuarantineDetail)
def quarantine_entry(
    request: Request, session: SessionDep, ctx: AuditDep, _who: QuarantineReader, entry_id: RowId
) -> QuarantineDetail:
    """One quarantined instance: reason, message, origin and attempts (no PHI)."""
    ctx.set(audit.EventId.QUERY, audit.Action.READ, object_type="quarantine")
    with unit(request, ctx, session) as work:
        detail = quarantine_ops.entry_detail(session, entry_id)
        work.note(object_id=str(entry_id))
    return QuarantineDetail.model_validate(detail)


def _steward_action(ctx: AuditDep, action: audit.Action, step: str) -> None:
    ctx.set(
        audit.EventId.SECURITY_ALERT,
        action,
        event_type=audit.EventType.USE_OF_RESTRICTED_FUNCTION,
        object_type="quarantine",
        step=step,
    )


@router.post("/quarantine/{entry_id}/retry", response_model=RetryOut)
def quarantine_retry(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    state: StateDep,
    _who: QuarantineWriter,
    entry_id: RowId,
) -> RetryOut:
    """Send a held original through the pipeline again (after a profile fix, say)."""
    _steward_action(ctx, audit.Action.UPDATE, "retry")
    if state.quarantine_dir is None or state.spool_dir is None:
        raise RetryableError("quarantine actions are not configured on this API")
    with unit(request, ctx, session) as work:
        job_id = quarantine_ops.retry(
            session,
            entry_id,
            quarantine_dir=state.quarantine_dir,
            spool_dir=state.spool_dir,
            node=state.node,
        )
        # Sent by the session's job sink once this transaction (the record with it) commits.
        enqueue_after_commit(session, [job_id])
        work.note(object_id=str(entry_id), job_id=job_id)
    queued = state.sent.take(job_id) if state.sent is not None else False
    return RetryOut(entry_id=entry_id, job_id=job_id, queued=queued)


@router.post("/quarantine/{entry_id}/purge", response_model=PurgeOut)
def quarantine_purge(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    state: StateDep,
    _who: QuarantineWriter,
    entry_id: RowId,
) -> PurgeOut:
    """Delete a held original for good; the entry, its reason and its fate stay."""
    _steward_action(ctx, audit.Action.DELETE, "purge")
    if state.quarantine_dir is None:
        raise RetryableError("quarantine actions are not configured on this API")
    with unit(request, ctx, session) as work:
        quarantine_ops.purge(session, entry_id, quarantine_dir=state.quarantine_dir)
        work.note(object_id=str(entry_id))
    return PurgeOut(entry_id=entry_id, status="PURGED")
