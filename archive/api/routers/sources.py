"""PACS allowed to send, for admins (and auditors, who may list them)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from archive import audit
from archive.api.deps import (
    AuditContext,
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
    ctx.set(
        audit.EventId.SECURITY_ALERT,
        audit.Action.CREATE,
        event_type=audit.EventType.NETWORK_CONFIGURATION,
        object_type="node",
        # Configuration an admin typed, not patient data: kept even when refused.
        object_id=body.ae_title if sources.AE_TITLE.match(body.ae_title) else None,
    )
    with unit(request, ctx, session) as work:
        src = sources.add_source(
            session,
            ae_title=body.ae_title,
            address=body.address,
            profile_name=body.profile,
            site=body.site,
            region=body.region,
            profiles_dir=state.profiles_dir,
            cert_sha256=body.cert_sha256,
            cert_cn=body.cert_cn,
        )
        work.note(
            object_id=src.ae_title,
            address=src.address,
            profile=src.profile_name,
            region=src.region,
            cert_sha256=src.cert_sha256,
            cert_cn=src.cert_cn,
        )
        row = sources.source_row(src)
    return SourceOut.model_validate(row)


def _node_change(ctx: AuditContext, action: audit.Action, ae_title: str) -> None:
    ctx.set(
        audit.EventId.SECURITY_ALERT,
        action,
        event_type=audit.EventType.NETWORK_CONFIGURATION,
        object_type="node",
        object_id=ae_title if sources.AE_TITLE.match(ae_title) else None,
    )


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
    _node_change(ctx, audit.Action.UPDATE, ae_title)
    with unit(request, ctx, session) as work:
        src, changes = sources.edit_source(
            session,
            ae_title,
            state.profiles_dir,
            profile_name=body.profile,
            region=body.region,
            address=body.address,
            site=body.site,
            cert_sha256=body.cert_sha256,
            cert_cn=body.cert_cn,
        )
        if body.enabled is not None and body.enabled != src.enabled:
            changes["enabled"] = [src.enabled, body.enabled]
            sources.set_enabled(session, ae_title, body.enabled)
        work.note(object_id=src.ae_title, changes=changes)
        row = sources.source_row(src)
    return SourceOut.model_validate(row)


@router.delete("/sources/{ae_title}", status_code=204, response_class=Response)
def remove_source(
    request: Request, session: SessionDep, ctx: AuditDep, _who: SourceWriter, ae_title: str
) -> Response:
    """Stop accepting a PACS; its past jobs keep its AE title."""
    ctx.set(
        audit.EventId.SECURITY_ALERT,
        audit.Action.DELETE,
        event_type=audit.EventType.NETWORK_CONFIGURATION,
        object_type="node",
    )
    with unit(request, ctx, session) as work:
        sources.remove_source(session, ae_title)
        work.note(object_id=ae_title)
    return Response(status_code=204)
