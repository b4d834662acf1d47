"""One job, start to finish: spool -> de-identify -> archive file -> catalog -> spool cleared.

Every step can be repeated after a crash: the engine is deterministic, archive writes are
atomic renames of identical bytes, and the catalog refuses a second row for the same
instance. So a job run twice ends exactly as a job run once.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from amana.errors import QuarantineError, QuarantineReason
from anonymizer.engine import Deidentifier
from anonymizer.outcome import Outcome
from anonymizer.paths import archive_relpath
from archive import audit
from archive.catalog import find_instance, record_instance
from archive.fsio import durable_move, durable_write
from archive.jobs import claim, utcnow
from archive.models import Job, JobStatus, QuarantineEntry, QuarantineStatus

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


class JobResult(StrEnum):
    ARCHIVED = "archived"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    SKIPPED = "skipped"


@dataclass
class WorkerContext:
    sessions: sessionmaker[Session]
    deidentifier: Deidentifier
    spool_dir: Path
    archive_dir: Path
    quarantine_dir: Path
    stale_after: timedelta


def process_job(ctx: WorkerContext, job_id: int) -> JobResult:
    with ctx.sessions.begin() as session:
        claimed = claim(session, job_id, stale_after=ctx.stale_after)
    if claimed is None:
        return JobResult.SKIPPED
    attempt, spool_name = claimed

    spool_path = ctx.spool_dir / "incoming" / spool_name
    held_path = ctx.quarantine_dir / spool_name
    if not spool_path.exists() and held_path.exists():
        # A crash between moving to quarantine and committing that decision: the move was
        # never recorded, so undo it and decide again.
        durable_move(held_path, spool_path, mode=0o600)
    if not spool_path.exists():
        # Cannot happen unless someone removed the file: record it loudly, never silently.
        return _finish_quarantine(
            ctx,
            job_id,
            spool_name,
            QuarantineError(QuarantineReason.PROCESSING_ERROR, "spooled file is missing"),
            None,
        )

    if attempt > MAX_ATTEMPTS:
        # Each earlier attempt was claimed and never finished: this input kills workers.
        return _quarantine(
            ctx,
            job_id,
            spool_name,
            QuarantineError(
                QuarantineReason.WORKER_LOST,
                f"processing never finished in {MAX_ATTEMPTS} attempts (worker lost)",
            ),
        )

    data = spool_path.read_bytes()
    try:
        outcome = ctx.deidentifier.deidentify(data)
    except QuarantineError as exc:
        return _quarantine(ctx, job_id, spool_name, exc)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: B036 - a native decoder's panic is not an Exception
        # A decoder that blows up is contained to its job.
        error = QuarantineError(
            QuarantineReason.PROCESSING_ERROR,
            f"de-identification failed with {type(exc).__name__}",
        )
        return _quarantine(ctx, job_id, spool_name, error)

    result = _archive(ctx, job_id, outcome)
    spool_path.unlink(missing_ok=True)
    return result


def _archive(ctx: WorkerContext, job_id: int, outcome: Outcome) -> JobResult:
    facts = outcome.facts
    relpath = archive_relpath(facts)
    now = utcnow()
    with ctx.sessions.begin() as session:
        existing = find_instance(session, facts.sop_instance_uid)
        if existing is not None:
            _mark_done(session, job_id, existing.id, duplicate=True, now=now)
            return JobResult.DUPLICATE
    durable_write(ctx.archive_dir / relpath, outcome.data)
    try:
        with ctx.sessions.begin() as session:
            instance = record_instance(
                session,
                facts,
                archive_path=relpath.as_posix(),
                sha256=hashlib.sha256(outcome.data).hexdigest(),
                size_bytes=len(outcome.data),
                now=now,
            )
            _mark_done(session, job_id, instance.id, duplicate=False, now=now)
            # Last before the commit: the audit append holds the chain's head lock until then.
            audit.append(
                session,
                audit.instance_archived(
                    job_id,
                    facts.study_uid,
                    facts.sop_instance_uid,
                    facts.profile_name,
                    facts.profile_version,
                ),
            )
    except IntegrityError:
        # Another worker archived the same instance (same bytes, same path) meanwhile.
        with ctx.sessions.begin() as session:
            existing = find_instance(session, facts.sop_instance_uid)
            assert existing is not None
            _mark_done(session, job_id, existing.id, duplicate=True, now=now)
        return JobResult.DUPLICATE
    return JobResult.ARCHIVED


def _mark_done(
    session: Session, job_id: int, instance_id: int, *, duplicate: bool, now: object
) -> None:
    job = session.get_one(Job, job_id)
    job.status = JobStatus.DONE
    job.instance_id = instance_id
    job.duplicate = duplicate
    job.finished_at = now  # type: ignore[assignment]
    job.last_error_code = None


def _quarantine(
    ctx: WorkerContext, job_id: int, spool_name: str, error: QuarantineError
) -> JobResult:
    held_path = ctx.quarantine_dir / spool_name
    ctx.quarantine_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Originals kept aside are readable by the service account only.
    durable_move(ctx.spool_dir / "incoming" / spool_name, held_path, mode=0o600)
    return _finish_quarantine(ctx, job_id, spool_name, error, held_path)


def _finish_quarantine(
    ctx: WorkerContext,
    job_id: int,
    spool_name: str,
    error: QuarantineError,
    held_path: Path | None,
) -> JobResult:
    now = utcnow()
    with ctx.sessions.begin() as session:
        job = session.get_one(Job, job_id)
        job.status = JobStatus.QUARANTINED
        job.last_error_code = error.reason.value
        job.finished_at = now
        entry = session.scalars(
            select(QuarantineEntry).where(QuarantineEntry.job_id == job_id)
        ).first()
        size = held_path.stat().st_size if held_path else 0
        if entry is None:
            session.add(
                QuarantineEntry(
                    job_id=job_id,
                    reason=error.reason.value,
                    message=error.message,
                    stored_name=spool_name,
                    size_bytes=size,
                    status=QuarantineStatus.HELD,
                    created_at=now,
                )
            )
        else:  # quarantined again after a retry: the newest decision is the one that holds
            entry.reason = error.reason.value
            entry.message = error.message
            entry.size_bytes = size
            entry.status = QuarantineStatus.HELD
            entry.created_at = now
        audit.append(session, audit.job_quarantined(job_id, error.reason.value))
    log.info("job %s quarantined: %s", job_id, error.reason.value)
    return JobResult.QUARANTINED
