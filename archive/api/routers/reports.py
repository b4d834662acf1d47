"""Who sent what: studies and instances per source, period and profile version, and
quarantines per source, period and reason (archive/catalog/reports.py), JSON or CSV."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from archive import audit
from archive.api.deps import (
    CSV_ANSWER,
    AuditDep,
    CatalogReader,
    SessionDep,
    csv_response,
    filters_for_audit,
    unit,
)
from archive.catalog import reports
from archive.catalog.csv_rows import to_csv

router = APIRouter(tags=["catalog"])

Day = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD, UTC")]


class ArchivedRow(BaseModel):
    source: str
    period: str
    profile: str
    profile_version: str
    studies: int
    instances: int


class QuarantinedRow(BaseModel):
    source: str
    period: str
    reason: str
    count: int


class SourceTotal(BaseModel):
    source: str
    studies: int
    instances: int
    quarantined: int


class Report(BaseModel):
    period: Literal["day", "week", "month"]
    received_from: str | None
    received_to: str | None
    source: str | None
    archived: list[ArchivedRow]
    quarantined: list[QuarantinedRow]
    by_source: list[SourceTotal]


@router.get("/reports", response_model=Report, responses=CSV_ANSWER)
def report(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    _who: CatalogReader,
    received_from: Day = None,
    received_to: Day = None,
    source: Annotated[str | None, Query(max_length=16, description="AE title")] = None,
    period: Annotated[Literal["day", "week", "month"], Query()] = "day",
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Report | Response:
    """Studies and instances received per source and day, ISO week or month, per profile
    version; quarantines per source, period and reason; totals per source."""
    flt = reports.ReportFilter(received_from, received_to, source, period)
    csv = format == "csv"
    ctx.set(
        audit.EventId.EXPORT if csv else audit.EventId.QUERY,
        audit.Action.READ if csv else audit.Action.EXECUTE,
        object_type="catalog",
        object_id="reports",
    )
    if csv:
        ctx.detail["format"] = "csv"
    with unit(request, ctx, session) as work:
        result = reports.report(session, flt)
        work.note(
            filters=filters_for_audit(
                bool(result["by_source"]),
                {"received_from": received_from, "received_to": received_to, "period": period},
                {"source": source},
            )
        )
    if csv:
        return csv_response(
            to_csv(reports.report_rows(result), reports.REPORT_COLUMNS), "report.csv"
        )
    return Report.model_validate(result)
