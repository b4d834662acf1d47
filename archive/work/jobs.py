"""Job state in the catalog: the database, not the broker, is the source of truth for work."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, Table, insert, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from archive.catalog.models import Job, JobStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_job(
    session: Session,
    *,
    spool_name: str,
    size_bytes: int,
    calling_ae: str | None,
    source_kind: str,
    source_id: int | None = None,
    node: str | None = None,
) -> int:
    now = utcnow()
    # A Core INSERT … RETURNING: this runs once per received instance on the C-STORE path,
    # where the ORM's unit of work cost more than the statement.
    job_id = session.execute(
        insert(Job)
        .values(
            spool_name=spool_name,
            size_bytes=size_bytes,
            calling_ae=calling_ae,
            source_kind=source_kind,
            source_id=source_id,
            node=node,
            status=JobStatus.RECEIVED,
            attempts=0,
            received_at=now,
            # Set here because the publish follows this commit; the sweeper re-sends from here.
            enqueued_at=now,
        )
        .returning(Job.id)
    ).scalar_one()
    return int(job_id)


@dataclass(frozen=True)
class NewJob:
    """A received instance waiting for its job row."""

    spool_name: str
    size_bytes: int
    calling_ae: str | None
    source_kind: str
    source_id: int | None = None
    # The ingest node whose spool holds it (AMANA_NODE).
    node: str | None = None


def create_jobs_if_absent(session: Session, new: Sequence[NewJob]) -> list[int]:
    """RECEIVED jobs for those of `new` whose spool name has none yet (jobs.spool_name is
    unique); the ids of the rows made here, so that whoever made a row enqueues it, once.

    The receiver's job batcher and the spool recovery scan may both see a received
    instance without its row: inserting if absent lets either make it, never both."""
    if not new:
        return []
    now = utcnow()
    rows = [
        {
            "spool_name": job.spool_name,
            "size_bytes": job.size_bytes,
            "calling_ae": job.calling_ae,
            "source_kind": job.source_kind,
            "source_id": job.source_id,
            "node": job.node,
            "status": JobStatus.RECEIVED,
            "attempts": 0,
            "received_at": now,
            "enqueued_at": now,
        }
        for job in dict((job.spool_name, job) for job in new).values()
    ]
    table = cast(Table, Job.__table__)
    dialect = session.get_bind().dialect.name
    insert_of = pg_insert if dialect == "postgresql" else sqlite_insert
    # One statement whatever the number of rows (SQLAlchemy batches the executemany into
    # multi-row INSERTs), so it is compiled once per process, not once per batch size.
    statement = (
        insert_of(table)
        .on_conflict_do_nothing(index_elements=[table.c.spool_name])
        .returning(table.c.id)
    )
    return [int(job_id) for job_id in session.scalars(statement, rows)]


# Names per look-up: well under SQLite's and PostgreSQL's limits on bound parameters.
_INSERT_CHUNK = 1000


def job_ids_of(session: Session, spool_names: Sequence[str]) -> dict[str, int]:
    """The job id of each of `spool_names` that has a job."""
    found: dict[str, int] = {}
    names = list(spool_names)
    for start in range(0, len(names), _INSERT_CHUNK):
        found.update(
            (str(name), int(job_id))
            for name, job_id in session.execute(
                select(Job.spool_name, Job.id).where(
                    Job.spool_name.in_(names[start : start + _INSERT_CHUNK])
                )
            )
        )
    return found


def _claimable(now: datetime, stale_after: timedelta) -> ColumnElement[bool]:
    return or_(
        Job.status == JobStatus.RECEIVED,
        (Job.status == JobStatus.RUNNING) & (Job.claimed_at < now - stale_after),
    )


def _of_node(node: str | None) -> ColumnElement[bool]:
    """Jobs of `node` only: their originals are in its spool and nowhere else. None (tools
    and tests running jobs in-process, never a worker or a sweeper) means any node."""
    return true() if node is None else Job.node == node


@dataclass(frozen=True)
class Claim:
    """A job this worker holds. `claimed_at` is the mark it wrote: while the row still
    carries it, no other worker has taken the job over."""

    job_id: int
    attempt: int
    spool_name: str
    claimed_at: datetime
    # The registered source of the job, whose profile and region the instance gets.
    source_id: int | None = None
    # What its series asks of the pixel step (archive/work/sampling.py); None: not yet known.
    pixel_mode: str | None = None


def claim_many(
    session: Session, job_ids: Sequence[int], *, stale_after: timedelta, node: str | None = None
) -> list[Claim]:
    """Take the jobs of `job_ids` that are ours to run (of our node, not finished, not held
    fresh by another worker), in the order given.

    One conditional UPDATE, so two deliveries of the same job id cannot both run it, and a
    job id that reached the wrong node's queue is left to its own node.
    """
    if not job_ids:
        return []
    now = utcnow()
    rows = session.execute(
        update(Job)
        .where(Job.id.in_(job_ids))
        .where(_of_node(node))
        .where(_claimable(now, stale_after))
        .values(status=JobStatus.RUNNING, claimed_at=now, attempts=Job.attempts + 1)
        .returning(Job.id, Job.attempts, Job.spool_name, Job.source_id, Job.pixel_mode)
        .execution_options(synchronize_session=False)
    ).all()
    found = {
        int(row[0]): Claim(
            int(row[0]),
            int(row[1]),
            str(row[2]),
            now,
            None if row[3] is None else int(row[3]),
            row[4],
        )
        for row in rows
    }
    return [found[job_id] for job_id in dict.fromkeys(job_ids) if job_id in found]


def defer_attempts(session: Session, claims: Sequence[Claim]) -> None:
    """Take back the attempt `claim_many` counted for these jobs: they stay ours, but only
    `start_attempt` counts them, right before each one actually runs."""
    if claims:
        session.execute(
            update(Job)
            .where(Job.id.in_([c.job_id for c in claims]))
            .values(attempts=Job.attempts - 1)
            .execution_options(synchronize_session=False)
        )


def renew_claims(session: Session, claims: Sequence[Claim]) -> list[Claim]:
    """The claims still held (no other worker took the job over), with a fresh mark: a
    worker renews the claims of the batch it is working through, so that a batch longer
    than the stale timeout does not look abandoned (the sweeper would re-send its jobs and
    another worker run them a second time)."""
    if not claims:
        return []
    now = utcnow()
    kept = set(
        session.scalars(
            update(Job)
            .where(Job.status == JobStatus.RUNNING)
            .where(or_(*[(Job.id == c.job_id) & (Job.claimed_at == c.claimed_at) for c in claims]))
            .values(claimed_at=now)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        ).all()
    )
    return [replace(claim, claimed_at=now) for claim in claims if claim.job_id in kept]


def start_attempt(session: Session, held: Claim) -> Claim | None:
    """Count one attempt for a job held since `defer_attempts`; None if another worker took
    it over meanwhile (its claim went stale and was claimed again)."""
    now = utcnow()
    row = session.execute(
        update(Job)
        .where(Job.id == held.job_id)
        .where(Job.status == JobStatus.RUNNING)
        .where(Job.claimed_at == held.claimed_at)
        .values(claimed_at=now, attempts=Job.attempts + 1)
        .returning(Job.attempts)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return None
    return Claim(held.job_id, int(row[0]), held.spool_name, now, held.source_id, held.pixel_mode)


# A job that waits in a long queue is not lost: each re-send of a RECEIVED job waits twice
# as long as the one before (stale_after, 2x, 4x, then 8x for ever), so a backlog of N jobs
# costs a few messages per job instead of one per job every `stale_after`, which grew the
# queue faster than the worker drained it (docs/reliability.md, the 2,000-instance chaos run).
RESEND_DOUBLINGS = 3


def _resend_due(now: datetime, stale_after: timedelta) -> ColumnElement[bool]:
    terms = [
        (Job.resends == k) & (Job.enqueued_at < now - stale_after * 2**k)
        for k in range(RESEND_DOUBLINGS)
    ]
    terms.append(
        (Job.resends >= RESEND_DOUBLINGS)
        & (Job.enqueued_at < now - stale_after * 2**RESEND_DOUBLINGS)
    )
    return or_(Job.enqueued_at.is_(None), *terms)


def jobs_to_resend(
    session: Session, *, stale_after: timedelta, limit: int = 1000, node: str | None = None
) -> Sequence[int]:
    """Jobs of `node` whose message may have been lost: RECEIVED and not (re-)sent within their
    back-off, or RUNNING on a worker that has not renewed its claim within `stale_after`
    (re-sent at most once per `stale_after`: a re-send does not renew the claim)."""
    now = utcnow()
    cutoff = now - stale_after
    rows = session.scalars(
        select(Job.id)
        .where(_of_node(node))
        .where(
            or_(
                (Job.status == JobStatus.RECEIVED) & _resend_due(now, stale_after),
                (Job.status == JobStatus.RUNNING)
                & (Job.claimed_at < cutoff)
                & or_(Job.enqueued_at.is_(None), Job.enqueued_at < cutoff),
            )
        )
        .order_by(Job.id)
        .limit(limit)
    ).all()
    return rows


def received_before(
    session: Session, cutoff: datetime, *, limit: int = 1000, node: str | None = None
) -> Sequence[int]:
    """RECEIVED jobs of `node` last sent before `cutoff`: after a broker outage (or the
    node's own restart) any of them may have no message (a failed publish, or a broker that
    came back empty)."""
    return session.scalars(
        select(Job.id)
        .where(_of_node(node))
        .where(Job.status == JobStatus.RECEIVED)
        .where(Job.enqueued_at < cutoff)
        .order_by(Job.id)
        .limit(limit)
    ).all()


def nodes_of(session: Session, job_ids: Sequence[int]) -> dict[str | None, list[int]]:
    """`job_ids` by the node that must run them, for publishing each to its node's queue."""
    by_node: dict[str | None, list[int]] = {}
    if job_ids:
        rows = session.execute(
            select(Job.node, Job.id).where(Job.id.in_(list(job_ids))).order_by(Job.id)
        ).all()
        for node, job_id in rows:
            by_node.setdefault(node, []).append(int(job_id))
    return by_node


# The send time of a job whose message never reached the broker: older than any cutoff, so
# the next sweeper pass sends it.
NEVER_SENT = datetime(1970, 1, 1, tzinfo=UTC)


def mark_never_sent(session: Session, job_ids: Sequence[int]) -> None:
    """Jobs a process could not publish before it stopped: the sweeper's next pass sends
    them, instead of waiting `stale_after` as for a message that may still be queued."""
    for start in range(0, len(job_ids), 1000):
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids[start : start + 1000]))
            .where(Job.status == JobStatus.RECEIVED)
            .values(enqueued_at=NEVER_SENT)
            .execution_options(synchronize_session=False)
        )


def mark_resent(session: Session, job_ids: Sequence[int]) -> None:
    if job_ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids))
            .values(enqueued_at=utcnow(), resends=Job.resends + 1)
        )
