"""Liveness for load balancers and the lead's supervisor."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from archive.api.deps import SessionDep
from archive.api.schemas import Health
from archive.catalog.statistics import job_counts

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health)
def health(session: SessionDep) -> Health:
    """Liveness and job counts; no token, not audited (polled every few seconds)."""
    session.execute(text("SELECT 1"))
    return Health(status="ok", jobs=job_counts(session))
