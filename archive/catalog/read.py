"""Job counts for the liveness probe and the command line (searches live in `search`)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive.catalog.models import Job, JobStatus


def job_counts(session: Session) -> dict[str, int]:
    counts = {status.value: 0 for status in JobStatus}
    for status, count in session.execute(select(Job.status, func.count()).group_by(Job.status)):
        counts[status.value] = count
    return counts
