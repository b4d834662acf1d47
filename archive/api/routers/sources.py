"""PACS allowed to send, for admins (and auditors, who may list them)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from archive import audit
from archive.api import admin_steps as steps
from archive.api.deps import (
    AuditDep,
    SessionDep,
    SourceReader,
    SourceWriter,
    StateDep,
    unit,
)
from archive.api.schemas import SourceIn, SourceOut
from archive.governance import sources

router = APIRouter(tags=["sources"])


@router.get("/sources", response_model=list[SourceOut])
def list_sources(
    request: Request, session: SessionDep, ctx: AuditDep, _who: SourceReader
) -> list[SourceOut]:
    """PACS allowed to send: AE title, address, profile, site and region."""
    ctx.set(audit.EventId.QUERY, audit.Action.EXECUTE, object_type="source")
    with unit(request, ctx, session):
        rows = sources.list_sources(session)
    return [SourceOut.model_validate(row) for row in rows]


class SourcePatch(BaseModel):
    """What to change; a field left out is unchanged, an empty text clears it."""

    profile: str | None = Field(default=None, max_length=64)
    region: str | None = Field(default=None, max_length=64)
    address: str | None = Field(default=None, max_length=64)
    site: str | None = Field(default=None, max_length=64)
    cert_sha256: str | None = Field(default=None, max_length=128)
    cert_cn: str | None = Field(default=None, max_length=64)
    enabled: bool | None = None


@router.post("/sources", status_code=201, response_model=SourceOut)
def add_source(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    state: StateDep,
    _who: SourceWriter,
    body: SourceIn,
) -> SourceOut:
    """Register a PACS: its AE title and the address or network it connects from, and the
    profile and region its studies get (both must exist: 422 otherwise)."""
    row = steps.add_source(request, ctx, session, state, **body.model_dump())
    return SourceOut.model_validate(row)


@router.patch("/sources/{ae_title}", response_model=SourceOut)
def edit_source(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    state: StateDep,
    _who: SourceWriter,
    ae_title: str,
    body: SourcePatch,
) -> SourceOut:
    """Change a source's profile, region, address, site or client certificate binding, or
    disable / enable it. Its instances not yet processed get the new profile and region; a
    disabled source is refused at association."""
    row = steps.edit_source(
        request,
        ctx,
        session,
        state,
        ae_title,
        enabled=body.enabled,
        profile_name=body.profile,
        region=body.region,
        address=body.address,
        site=body.site,
        cert_sha256=body.cert_sha256,
        cert_cn=body.cert_cn,
    )
    return SourceOut.model_validate(row)


@router.delete("/sources/{ae_title}", status_code=204, response_class=Response)
def remove_source(
    request: Request, session: SessionDep, ctx: AuditDep, _who: SourceWriter, ae_title: str
) -> Response:
    """Stop accepting a PACS; its past jobs keep its AE title."""
    steps.remove_source(request, ctx, session, ae_title)
    return Response(status_code=204)
