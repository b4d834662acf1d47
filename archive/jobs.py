"""Job state in the catalog: the database, not the broker, is the source of truth for work."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from archive.models import Job, JobStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_job(
    session: Session, *, spool_name: str, size_bytes: int, calling_ae: str | None, source_kind: str
) -> int:
    now = utcnow()
    job = Job(
        spool_name=spool_name,
        size_bytes=size_bytes,
        calling_ae=calling_ae,
        source_kind=source_kind,
        status=JobStatus.RECEIVED,
        attempts=0,
        received_at=now,
        # Set here because the publish follows this commit; the sweeper re-sends from this mark.
        enqueued_at=now,
    )
    session.add(job)
    session.flush()
    return job.id


def claim(session: Session, job_id: int, *, stale_after: timedelta) -> tuple[int, str] | None:
    """Take the job for this worker unless it is finished or another worker holds it fresh;
    returns (attempt number, spool name), or None when the job is not ours to run.

    A conditional UPDATE, so two deliveries of the same job id cannot both run it.
    """
    now = utcnow()
    row = session.execute(
        update(Job)
        .where(Job.id == job_id)
        .where(
            or_(
                Job.status == JobStatus.RECEIVED,
                (Job.status == JobStatus.RUNNING) & (Job.claimed_at < now - stale_after),
            )
        )
        .values(status=JobStatus.RUNNING, claimed_at=now, attempts=Job.attempts + 1)
        .returning(Job.attempts, Job.spool_name)
    ).first()
    return None if row is None else (int(row[0]), str(row[1]))


def jobs_to_resend(session: Session, *, stale_after: timedelta, limit: int = 1000) -> Sequence[int]:
    """Jobs whose message may have been lost: RECEIVED and not re-sent lately, or RUNNING on a
    worker that has not finished within the timeout."""
    cutoff = utcnow() - stale_after
    rows = session.scalars(
        select(Job.id)
        .where(
            or_(
                (Job.status == JobStatus.RECEIVED) & (Job.enqueued_at < cutoff),
                (Job.status == JobStatus.RUNNING) & (Job.claimed_at < cutoff),
            )
        )
        .order_by(Job.id)
        .limit(limit)
    ).all()
    return rows


def mark_resent(session: Session, job_ids: Sequence[int]) -> None:
    if job_ids:
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(enqueued_at=utcnow()))
