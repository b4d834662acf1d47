"""Steward actions on quarantined originals: retry, release (hand out) and purge."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from anonymizer.errors import RejectError
from archive.catalog.models import Job, JobStatus, QuarantineEntry, QuarantineStatus
from archive.fsio import durable_move, fsync_dir
from archive.work.jobs import utcnow


def _held(session: Session, entry_id: int) -> QuarantineEntry:
    entry = session.get(QuarantineEntry, entry_id)
    if entry is None:
        raise RejectError(f"no quarantine entry {entry_id}", code="not_found")
    if entry.status is not QuarantineStatus.HELD:
        raise RejectError(
            f"quarantine entry {entry_id} is {entry.status.value}, not HELD", code="conflict"
        )
    return entry


def retry(session: Session, entry_id: int, *, quarantine_dir: Path, spool_dir: Path) -> int:
    """Put the original back in the spool and its job back to RECEIVED; returns the job id
    for the caller to enqueue after the commit."""
    entry = _held(session, entry_id)
    job = session.get_one(Job, entry.job_id)
    src = quarantine_dir / entry.stored_name
    dest = spool_dir / "incoming" / job.spool_name
    if src.exists():
        durable_move(src, dest, mode=0o600)
    elif not dest.exists():
        raise RejectError(f"the original of entry {entry_id} is missing", code="conflict")
    entry.status = QuarantineStatus.RETRIED
    job.status = JobStatus.RECEIVED
    # A fresh start: earlier attempts may be what put it in quarantine (worker_lost).
    job.attempts = 0
    job.enqueued_at = utcnow()
    job.finished_at = None
    return job.id


def release(session: Session, entry_id: int, *, quarantine_dir: Path, dest_dir: Path) -> Path:
    """Hand the original out of Amana (to return it to its hospital or handle it by hand)."""
    entry = _held(session, entry_id)
    dest_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    dest = dest_dir / f"quarantine-{entry.id}.dcm"
    shutil.copyfile(quarantine_dir / entry.stored_name, dest)
    os.chmod(dest, 0o600)
    fsync_dir(dest_dir)
    (quarantine_dir / entry.stored_name).unlink()
    entry.status = QuarantineStatus.RELEASED
    return dest


def purge(session: Session, entry_id: int, *, quarantine_dir: Path) -> None:
    """Delete the original for good; the catalog keeps the entry, its reason and its fate."""
    entry = _held(session, entry_id)
    (quarantine_dir / entry.stored_name).unlink(missing_ok=True)
    fsync_dir(quarantine_dir)
    entry.status = QuarantineStatus.PURGED


def entry_detail(session: Session, entry_id: int) -> dict[str, object]:
    row = session.execute(
        select(QuarantineEntry, Job)
        .join(Job, Job.id == QuarantineEntry.job_id)
        .where(QuarantineEntry.id == entry_id)
    ).first()
    if row is None:
        raise RejectError(f"no quarantine entry {entry_id}", code="not_found")
    entry, job = row
    return {
        "id": entry.id,
        "job_id": job.id,
        "reason": entry.reason,
        "message": entry.message,
        "status": entry.status.value,
        "size_bytes": entry.size_bytes,
        "source_kind": job.source_kind,
        "calling_ae": job.calling_ae,
        "attempts": job.attempts,
        "received_at": job.received_at.isoformat() if job.received_at else None,
        "quarantined_at": entry.created_at.isoformat() if entry.created_at else None,
    }
