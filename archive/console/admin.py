"""Sources and users for administrators (and auditors, who turn an actor into a person):
read-only lists; changes stay with the command line and the API, where they are audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from archive import audit
from archive.api.deps import AuditDep, SessionDep, unit
from archive.console.session import ConsoleSession
from archive.console.web import PREFIX, ConsoleDep, page
from archive.governance.auth import Permission, Principal
from archive.governance.sources import list_sources
from archive.governance.users import list_users

router = APIRouter(prefix=PREFIX, include_in_schema=False)

Who = tuple[Principal, ConsoleSession]
SourceRead = Annotated[Who, Depends(page(Permission.SOURCES_READ))]
UserRead = Annotated[Who, Depends(page(Permission.USERS_READ))]


@router.get("/sources")
def sources(
    request: Request, session: SessionDep, ctx: AuditDep, console: ConsoleDep, who: SourceRead
) -> Response:
    ctx.set(audit.EventId.QUERY, audit.Action.EXECUTE, object_type="source")
    with unit(request, ctx, session):
        rows = list_sources(session)
    return console.render(request, "sources.html", principal=who[0], session=who[1], rows=rows)


@router.get("/users")
def users(
    request: Request, session: SessionDep, ctx: AuditDep, console: ConsoleDep, who: UserRead
) -> Response:
    ctx.set(audit.EventId.QUERY, audit.Action.EXECUTE, object_type="user")
    with unit(request, ctx, session):
        rows = list_users(session)
    return console.render(request, "users.html", principal=who[0], session=who[1], rows=rows)
