"""When a study is complete: the sweeper's study-closing step (ingest/sweeper.py).

A study is closed (RECEIVING -> COMPLETE, one `study_completed` audit event) when no
instance was added to it for `stable_after` and nothing that may still belong to it is
unfinished, on any node. A job not yet de-identified cannot say which study it belongs to
(its study is known only by the original UID, which the catalog never holds; the new UID
comes out of the engine). So the rule is conservative: a study waits while any job is
RECEIVED, RUNNING or HELD that was received within `stable_after` of the study's own
instances (from the first one's arrival to the last one's), whatever its node. That is what
keeps a study half received through a node that went down (its jobs wait in that node's
spool, RECEIVED) from being closed on the strength of the half the other node archived.
Instances that arrive with a pause longer than `stable_after` were, already on one node,
instances after completion.

Instances archived after completion reopen the study (archive/catalog/write.py sets it
RECEIVING and keeps `completed_at`); the next pass records that with one `study_reopened`
event and clears `completed_at`, so the trail of a study reads completed, reopened,
completed: never two completions in a row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Row, func, select, update
from sqlalchemy.orm import Session

from archive import audit
from archive.catalog.models import (
    Instance,
    Job,
    JobStatus,
    Series,
    SeriesSampling,
    Study,
    StudyStatus,
)

UNFINISHED = (JobStatus.RECEIVED, JobStatus.RUNNING, JobStatus.HELD)


def close_stable_studies(session: Session, *, now: datetime, stable_after: timedelta) -> int:
    """Record reopened studies, then close those complete by the rule above, each with its
    audit event; returns how many were closed. The audit appends come last: each holds the
    chain's head lock until the commit."""
    closable = _closable(session, now=now, stable_after=stable_after)
    _announce_reopened(session)
    if not closable:
        return 0
    cutoff = now - stable_after
    # The stability test again in the UPDATE: an instance archived since the look above
    # keeps its study open.
    closed = session.execute(
        update(Study)
        .where(Study.id.in_(closable))
        .where(Study.status == StudyStatus.RECEIVING)
        .where(Study.last_instance_at < cutoff)
        .values(status=StudyStatus.COMPLETE, completed_at=now)
        .returning(Study.id, Study.study_uid)
        .execution_options(synchronize_session=False)
    ).all()
    _record_each(session, closed, audit.study_completed)
    return len(closed)


def _closable(session: Session, *, now: datetime, stable_after: timedelta) -> list[int]:
    """The RECEIVING studies that the rule above finds complete."""
    cutoff = now - stable_after
    # Slices of a sampled series still held or on their way: their study is not complete.
    sampling = (
        select(SeriesSampling.id)
        .join(Job, Job.series_key == SeriesSampling.series_key)
        .where(SeriesSampling.study_uid == Study.study_uid)
        .where(Job.status.in_(UNFINISHED))
    )
    candidates = [
        int(study_id)
        for study_id in session.scalars(
            select(Study.id)
            .where(Study.status == StudyStatus.RECEIVING)
            .where(Study.last_instance_at < cutoff)
            .where(~sampling.exists())
        )
    ]
    if not candidates:
        return []
    arrivals = _arrivals(session, candidates)
    return [
        study_id
        for study_id in candidates
        if (window := arrivals.get(study_id)) is None
        or not _unfinished_between(session, window[0] - stable_after, window[1] + stable_after)
    ]


def _announce_reopened(session: Session) -> None:
    reopened = session.execute(
        update(Study)
        .where(Study.status == StudyStatus.RECEIVING)
        .where(Study.completed_at.is_not(None))
        .values(completed_at=None)
        .returning(Study.id, Study.study_uid)
        .execution_options(synchronize_session=False)
    ).all()
    _record_each(session, reopened, audit.study_reopened)


def _record_each(
    session: Session,
    studies: Sequence[Row[int, str]],
    record: Callable[[str, int], audit.AuditRecord],
) -> None:
    """One audit event per (id, UID) of `studies`, in UID order, with its instance count."""
    counts = _instance_counts(session, [int(study_id) for study_id, _ in studies])
    for study_id, study_uid in sorted(studies, key=lambda row: str(row[1])):
        audit.append(session, record(study_uid, counts.get(int(study_id), 0)))


def _arrivals(session: Session, study_ids: Sequence[int]) -> dict[int, tuple[datetime, datetime]]:
    """When the first and the last job that brought each study's instances was received
    (none for a study whose instances no job brought: tools, tests)."""
    rows = session.execute(
        select(Series.study_id, func.min(Job.received_at), func.max(Job.received_at))
        .join(Instance, Instance.series_id == Series.id)
        .join(Job, Job.instance_id == Instance.id)
        .where(Series.study_id.in_(study_ids))
        .group_by(Series.study_id)
    ).all()
    return {int(study_id): (first, last) for study_id, first, last in rows}


def _unfinished_between(session: Session, start: datetime, end: datetime) -> bool:
    """Whether a job of any node received between `start` and `end` is still unfinished."""
    return (
        session.scalar(
            select(Job.id)
            .where(Job.status.in_(UNFINISHED))
            .where(Job.received_at >= start)
            .where(Job.received_at <= end)
            .limit(1)
        )
        is not None
    )


def _instance_counts(session: Session, study_ids: Sequence[int]) -> dict[int, int]:
    if not study_ids:
        return {}
    rows = session.execute(
        select(Series.study_id, func.count(Instance.id))
        .join(Instance, Instance.series_id == Series.id)
        .where(Series.study_id.in_(study_ids))
        .group_by(Series.study_id)
    ).all()
    return {int(study_id): int(n) for study_id, n in rows}
