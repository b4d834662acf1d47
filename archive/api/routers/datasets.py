"""Datasets for AI teams and certification bodies: list, read, create. Sealing and exporting
write folders on the archive host and are commands (`amana dataset seal|export`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from anonymizer.errors import RejectError, RetryableError
from archive import audit
from archive.api.deps import (
    AuditDep,
    DatasetReader,
    DatasetWriter,
    SessionDep,
    StateDep,
    unit,
)
from archive.datasets.query import Where
from archive.datasets.service import (
    create_dataset,
    get_dataset,
    holds_sealed,
    list_datasets,
    summary,
)
from archive.datasets.splits import DEFAULT_PROPORTIONS

router = APIRouter(tags=["datasets"])


class DatasetIn(BaseModel):
    name: str = Field(max_length=64)
    where: dict[str, Any] = Field(default_factory=dict)
    proportions: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_PROPORTIONS))
    parent: str | None = Field(default=None, max_length=64)


class DatasetOut(BaseModel):
    """A frozen dataset: its query, split proportions, counts, seal."""

    name: str
    parent_id: int | None
    query: dict[str, Any]
    proportions: dict[str, float]
    patients: int
    studies: int
    instances: int
    sealed_at: str | None
    created_by: str
    created_at: str | None
    holds_sealed_patients: bool | None = None


@router.get("/datasets", response_model=list[DatasetOut])
def datasets(
    request: Request, session: SessionDep, ctx: AuditDep, _who: DatasetReader
) -> list[dict[str, Any]]:
    """Every dataset: its query, split proportions, counts and seal."""
    ctx.set(audit.EventId.QUERY, audit.Action.EXECUTE, object_type="dataset")
    with unit(request, ctx, session) as work:
        rows = list_datasets(session)
        work.note(rows=len(rows))
    return rows


@router.get("/datasets/{name}", response_model=DatasetOut)
def dataset(
    name: str, request: Request, session: SessionDep, ctx: AuditDep, _who: DatasetReader
) -> dict[str, Any]:
    ctx.set(audit.EventId.QUERY, audit.Action.READ, object_type="dataset", object_id=name)
    with unit(request, ctx, session):
        found = get_dataset(session, name)
        return summary(found, holds_sealed(session, found))


@router.post("/datasets", status_code=201, response_model=DatasetOut)
def new_dataset(
    body: DatasetIn,
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    state: StateDep,
    who: DatasetWriter,
) -> dict[str, Any]:
    """Freeze what `where` selects (patients already sealed left out), split by patient."""
    ctx.set(audit.EventId.QUERY, audit.Action.CREATE, object_type="dataset", object_id=body.name)
    with unit(request, ctx, session) as work:
        if state.dataset_secret is None:
            raise RetryableError("this API was started without the pseudonymization key")
        try:
            where = Where.from_json(body.where)
        except (ValueError, TypeError) as exc:
            raise RejectError(str(exc), code="dataset_invalid") from exc
        created = create_dataset(
            session,
            name=body.name,
            where=where,
            secret=state.dataset_secret,
            created_by=who.user,
            now=datetime.now(UTC),
            proportions=body.proportions,
            parent=body.parent,
        )
        work.note(patients=created.patients, instances=created.instances)
        return summary(created)
