"""Liveness for load balancers and the lead's supervisor."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text

from archive.api.deps import SessionDep
from archive.api.schemas import Health
from archive.catalog.statistics import job_counts

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health)
def health(session: SessionDep, request: Request) -> Health:
    """Liveness, job counts and the broker's state; no token, not audited (polled every few
    seconds). A broker outage is reported, not failed: receivers keep accepting meanwhile."""
    session.execute(text("SELECT 1"))
    broker_state = request.app.state.broker_state
    return Health(
        status="ok",
        jobs=job_counts(session),
        broker=broker_state() if broker_state is not None else None,
    )
