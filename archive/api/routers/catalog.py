"""Catalog reads for auditors: study search (JSON or CSV), one study, statistics."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from anonymizer.errors import RejectError
from archive import audit
from archive.api.deps import (
    CSV_ANSWER,
    MAX_EXPORT_ROWS,
    AuditDep,
    CatalogReader,
    SessionDep,
    csv_response,
    filters_for_audit,
    unit,
)
from archive.api.params import Offset
from archive.api.schemas import Statistics, StudyDetail, StudyPage
from archive.catalog import search
from archive.catalog import statistics as counts
from archive.catalog.csv_rows import to_csv

router = APIRouter(tags=["catalog"])

UID = re.compile(r"^[0-9.]{1,64}$")
Format = Literal["json", "csv"]
Date = Annotated[str | None, Query(pattern=r"^\d{8}$", description="YYYYMMDD")]
Day = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD, UTC")]


@router.get("/studies", response_model=StudyPage, responses=CSV_ANSWER)
def studies(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    _who: CatalogReader,
    date_from: Date = None,
    date_to: Date = None,
    modality: Annotated[str | None, Query(max_length=16)] = None,
    region: Annotated[str | None, Query(max_length=64)] = None,
    profile_version: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[Literal["RECEIVING", "COMPLETE"] | None, Query()] = None,
    source: Annotated[str | None, Query(max_length=16, description="AE title")] = None,
    received_from: Day = None,
    received_to: Day = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
    format: Annotated[Format, Query()] = "json",
) -> StudyPage | Response:
    """Studies by shifted study date, modality, region, profile version, status, source and
    day of receipt."""
    flt = search.StudyFilter(
        date_from,
        date_to,
        modality,
        region,
        profile_version,
        status,
        source,
        received_from,
        received_to,
    )
    total = search.count_studies(session, flt)
    filters = filters_for_audit(
        total > 0,
        {
            "date_from": date_from,
            "date_to": date_to,
            "status": status,
            "received_from": received_from,
            "received_to": received_to,
        },
        {
            "modality": modality,
            "region": region,
            "profile_version": profile_version,
            "source": source,
        },
    )
    if format == "csv":
        ctx.set(
            audit.EventId.EXPORT,
            audit.Action.READ,
            object_type="catalog",
            object_id="studies",
            filters=filters,
            format="csv",
        )
        with unit(request, ctx, session) as work:
            rows = search.search_studies(session, flt, limit=MAX_EXPORT_ROWS)
            work.note(rows=len(rows))
        return csv_response(to_csv(rows, search.STUDY_COLUMNS), "studies.csv")
    ctx.set(
        audit.EventId.QUERY,
        audit.Action.EXECUTE,
        object_type="catalog",
        object_id="studies",
        filters=filters,
        total=total,
        limit=limit,
        offset=offset,
    )
    with unit(request, ctx, session):
        items = search.search_studies(session, flt, limit=limit, offset=offset)
    return StudyPage.model_validate(
        {"total": total, "limit": limit, "offset": offset, "items": items}
    )


@router.get("/studies/{study_uid}", response_model=StudyDetail)
def study(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    _who: CatalogReader,
    study_uid: str,
) -> StudyDetail:
    """One study: series, instances (hash, profile version, pixel actions) and history."""
    ctx.set(audit.EventId.QUERY, audit.Action.READ, object_type="study")
    with unit(request, ctx, session) as work:
        if not UID.match(study_uid):
            raise RejectError("no such study", code="not_found")
        detail = search.study_detail(session, study_uid)
        work.note(object_id=study_uid)  # recorded only once it is known to be one of ours
    return StudyDetail.model_validate(detail)


@router.get("/statistics", response_model=Statistics, responses=CSV_ANSWER)
def statistics(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    _who: CatalogReader,
    format: Annotated[Format, Query()] = "json",
) -> Statistics | Response:
    """Studies and instances per region, modality and month; quarantine rates by reason."""
    if format == "csv":
        ctx.set(
            audit.EventId.EXPORT,
            audit.Action.READ,
            object_type="catalog",
            object_id="statistics",
            format="csv",
        )
        with unit(request, ctx, session):
            stats = counts.statistics(session)
        rows = counts.statistics_rows(stats)
        return csv_response(to_csv(rows, counts.STATISTICS_COLUMNS), "statistics.csv")
    ctx.set(
        audit.EventId.QUERY, audit.Action.EXECUTE, object_type="catalog", object_id="statistics"
    )
    with unit(request, ctx, session):
        stats = counts.statistics(session)
    return Statistics.model_validate(stats)
