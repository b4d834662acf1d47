"""The sweeper re-sends what may be lost without multiplying the queue
(archive/work/jobs.py, `jobs_to_resend`; ingest/sweeper.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from archive.catalog.models import Job, JobStatus
from archive.work.jobs import RESEND_DOUBLINGS, NewJob, create_jobs_if_absent, utcnow
from ingest.sweeper import sweep_once

STALE = timedelta(seconds=20)


def _job(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        return create_jobs_if_absent(session, [NewJob("a.dcm", 10, "PACS", "dicom")])[0]


def _set(sessions: sessionmaker[Session], job_id: int, **values: object) -> None:
    with sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def _sweep(sessions: sessionmaker[Session]) -> list[int]:
    sent: list[int] = []

    def resend(ids: Sequence[int]) -> None:
        sent.extend(ids)

    sweep_once(sessions, resend, stale_after=STALE, study_stable_after=timedelta(hours=1))
    return sent


def _resends(sessions: sessionmaker[Session], job_id: int) -> int:
    with sessions() as session:
        return int(session.scalars(select(Job.resends).where(Job.id == job_id)).one())


def test_a_waiting_job_is_resent_after_doubling_waits(sessions: sessionmaker[Session]) -> None:
    """Rule: a RECEIVED job is re-sent when its last sending is older than stale_after,
    then twice as long each time (2x, 4x, then 8x for ever): a job merely queued behind a
    backlog gets a few messages, not one every stale_after (which grew the queue faster
    than the worker drained it: 28,286 re-sends in 400 s of the 2,000-instance chaos run)."""
    job_id = _job(sessions)
    for k in range(RESEND_DOUBLINGS + 3):
        wait = STALE * 2 ** min(k, RESEND_DOUBLINGS)
        assert _resends(sessions, job_id) == k
        _set(sessions, job_id, enqueued_at=utcnow() - wait * 0.9)
        assert _sweep(sessions) == [], f"re-sent {k} times, then again before {wait}"
        _set(sessions, job_id, enqueued_at=utcnow() - wait * 1.1)
        assert _sweep(sessions) == [job_id], f"re-sent {k} times, not again after {wait}"


def test_a_stale_running_job_is_resent_once_per_stale_after(
    sessions: sessionmaker[Session],
) -> None:
    """Rule: a RUNNING job whose claim went stale is re-sent, then not again until
    stale_after has passed since that re-send (it was re-sent at every sweeper pass: the
    re-send marks the job, not its claim)."""
    job_id = _job(sessions)
    old = utcnow() - STALE * 3
    _set(sessions, job_id, status=JobStatus.RUNNING, claimed_at=old, enqueued_at=old)
    assert _sweep(sessions) == [job_id]
    assert _sweep(sessions) == []
    assert _sweep(sessions) == []
    _set(sessions, job_id, enqueued_at=utcnow() - STALE * 1.1)
    assert _sweep(sessions) == [job_id]
