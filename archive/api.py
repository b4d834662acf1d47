"""HTTP API for auditors and stewards (read side of the catalog)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from amana.errors import AmanaError
from amana.status_map import http_status
from archive import queries


def create_app(sessions: sessionmaker[Session]) -> FastAPI:
    app = FastAPI(title="Amana", version="0.1.0", description="Pseudonymous catalog of the archive")

    def session_dep() -> Iterator[Session]:
        with sessions() as session:
            yield session

    SessionDep = Annotated[Session, Depends(session_dep)]

    @app.exception_handler(AmanaError)
    async def _amana_error(_request: Request, exc: AmanaError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=http_status(exc))

    @app.get("/health")
    def health(session: SessionDep) -> dict[str, Any]:
        session.execute(text("SELECT 1"))
        return {"status": "ok", "jobs": queries.job_counts(session)}

    @app.get("/studies")
    def studies(
        session: SessionDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[dict[str, Any]]:
        return queries.list_studies(session, limit=limit, offset=offset)

    @app.get("/quarantine")
    def quarantine(
        session: SessionDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[dict[str, Any]]:
        return queries.list_quarantine(session, limit=limit, offset=offset)

    return app
