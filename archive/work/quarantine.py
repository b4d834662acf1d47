"""Steward actions on quarantined originals: retry, release (hand out) and purge."""

from __future__ import annotations

import errno
import os
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


def retry(
    session: Session,
    entry_id: int,
    *,
    quarantine_dir: Path,
    spool_dir: Path,
    node: str | None = None,
) -> int:
    """Put the original back in the spool and its job back to RECEIVED; returns the job id
    for the caller to enqueue after the commit. The job now belongs to `node`, the node
    whose spool `spool_dir` is (where the original now lies)."""
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
    if node is not None:
        job.node = node
    # A fresh start: earlier attempts may be what put it in quarantine (worker_lost).
    job.attempts = 0
    job.enqueued_at = utcnow()
    job.resends = 0
    job.finished_at = None
    return job.id


def release(session: Session, entry_id: int, *, quarantine_dir: Path, dest_dir: Path) -> Path:
    """Hand the original out of Amana (to return it to its hospital or handle it by hand).

    The copy is made only as a new file of its own, mode 0600, created relative to a
    descriptor of `dest_dir` opened without following a link: a symlink planted in the
    folder (or the folder itself a symlink) would send the original where another local
    user reads it, so both are refused and nothing is written through them.
    """
    entry = _held(session, entry_id)
    name = f"quarantine-{entry.id}.dcm"
    dir_fd = _open_destination(dest_dir)
    try:
        _copy_new_file(quarantine_dir / entry.stored_name, dir_fd, name)
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    (quarantine_dir / entry.stored_name).unlink()
    entry.status = QuarantineStatus.RELEASED
    return dest_dir / name


def _open_destination(dest_dir: Path) -> int:
    dest_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        return os.open(dest_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise RejectError(
                "the release folder is a symbolic link or not a folder: refused, nothing written",
                code="unsafe_destination",
            ) from exc
        raise


def _copy_new_file(src: Path, dir_fd: int, name: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        out = os.open(name, flags, 0o600, dir_fd=dir_fd)
    except FileExistsError as exc:
        # Also what a planted symlink by that name gives (O_EXCL never follows one).
        raise RejectError(
            f"the release folder already holds {name} (a file or a link): refused, nothing written",
            code="unsafe_destination",
        ) from exc
    try:
        os.fchmod(out, 0o600)  # whatever the umask left
        src_fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            while chunk := os.read(src_fd, 1 << 20):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view) :]
        finally:
            os.close(src_fd)
        os.fsync(out)
    except BaseException:
        os.close(out)
        os.unlink(name, dir_fd=dir_fd)
        raise
    os.close(out)


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
