"""The ingest nodes (archive/work/nodes.py): the same figures as `amana nodes`."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from archive import audit
from archive.api.deps import AuditDep, NodeReader, SessionDep, unit
from archive.work.nodes import node_status

router = APIRouter(tags=["nodes"])


class NodeOut(BaseModel):
    name: str
    alive: bool = Field(description="reported within its last three heartbeat periods")
    last_heartbeat_at: datetime | None
    started_at: datetime | None
    version: str | None
    received: int
    running: int
    held: int
    backlog: int = Field(description="RECEIVED + RUNNING + HELD jobs")
    done_last_5_min: int = Field(description="instances archived in the last 5 minutes")
    done_last_hour: int
    quarantined_last_hour: int
    retrying: int = Field(description="jobs waiting again after a failed attempt")


@router.get("/nodes", response_model=list[NodeOut])
def nodes(request: Request, session: SessionDep, ctx: AuditDep, _who: NodeReader) -> list[NodeOut]:
    """Each ingest node: last heartbeat, backlog, archiving rates and quarantines."""
    ctx.set(audit.EventId.QUERY, audit.Action.EXECUTE, object_type="nodes")
    with unit(request, ctx, session) as work:
        found = node_status(session)
        work.note(rows=len(found))
    return [NodeOut.model_validate(status.as_dict()) for status in found]
