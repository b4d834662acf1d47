"""An archived slice examined after the fact: its series turned out to carry text after it
had been archived undecoded (archive/work/sampling.py). Its archived file is examined in
full and replaced; if it cannot be cleaned with certainty it leaves the archive for the
quarantine, and the catalog forgets it. Either way nothing of a TEXT series stays in the
archive unexamined.

A job runs this when its mode is `reexamine`: its spooled original is long gone, and the
archived file (already de-identified, under the same path) is its input.
"""

from __future__ import annotations

import hashlib
import logging
from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.engine import Deidentifier
from anonymizer.errors import QuarantineError, QuarantineReason
from anonymizer.pixels import PixelMode
from archive import audit
from archive.catalog.models import Instance, Job, JobStatus, QuarantineEntry, QuarantineStatus
from archive.fsio import durable_write
from archive.stores import ArchiveStore
from archive.work.jobs import Claim, utcnow

log = logging.getLogger(__name__)


def reexamine_archived(
    sessions: sessionmaker[Session],
    claim: Claim,
    engine: Deidentifier,
    store: ArchiveStore,
    quarantine_dir: Path,
    *,
    give_up: QuarantineError | None = None,
) -> str:
    """Examine the archived file of `claim`'s instance; returns "archived" (replaced and
    recorded), "quarantined" or "skipped" (the job is no longer ours). With `give_up` (the
    job kept killing its workers) the file is withdrawn to quarantine unexamined."""
    with sessions() as session:
        row = session.execute(
            select(Instance.id, Instance.archive_path)
            .join(Job, Job.instance_id == Instance.id)
            .where(Job.id == claim.job_id)
        ).first()
    held = quarantine_dir / claim.spool_name
    if row is None:
        # Withdrawn by an earlier try that crashed before its commit, or never archived.
        with sessions.begin() as session:
            return _finish(session, claim, held if held.exists() else None, None)
    instance_id, relpath = int(row[0]), Path(str(row[1]))
    stored = store.read(relpath)
    if stored is None:
        # An earlier try moved it to quarantine and crashed before recording that.
        error = QuarantineError(
            QuarantineReason.PROCESSING_ERROR, "archived file withdrawn before its re-examination"
        )
        with sessions.begin() as session:
            return _finish(session, claim, held if held.exists() else None, error, instance_id)
    try:
        if give_up is not None:
            raise give_up
        data, actions = engine.reexamine(stored)
    except QuarantineError as error:
        quarantine_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The de-identified file with text that could not be cleaned: service account only.
        store.withdraw(relpath, held)
        with sessions.begin() as session:
            return _finish(session, claim, held, error, instance_id)
    # A store may replace by deleting and storing again (archive/stores/dicomweb.py): were
    # it to fail in between, the cleaned instance waits in quarantine, where the next try
    # finds it (as a withdrawn file), instead of being nowhere.
    quarantine_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    durable_write(held, data, mode=0o600)
    store.replace(relpath, data)
    syntax = str(dcmread(BytesIO(data), stop_before_pixels=True).file_meta.TransferSyntaxUID)
    with sessions.begin() as session:
        if not _still_mine(session, claim, JobStatus.DONE):
            return "skipped"
        session.execute(
            update(Instance)
            .where(Instance.id == instance_id)
            .values(
                sha256=hashlib.sha256(data).hexdigest(),
                size_bytes=len(data),
                transfer_syntax_uid=syntax,
                pixel_actions=",".join(actions)[:255],
            )
        )
        audit.append(session, _reexamined(instance_id, claim.job_id))
    held.unlink(missing_ok=True)
    return "archived"


def _still_mine(session: Session, claim: Claim, status: JobStatus) -> bool:
    row = session.execute(
        update(Job)
        .where(Job.id == claim.job_id)
        .where(Job.status == JobStatus.RUNNING)
        .where(Job.claimed_at == claim.claimed_at)
        .values(status=status, pixel_mode=PixelMode.EXAMINE.value, finished_at=utcnow())
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).first()
    return row is not None


def _finish(
    session: Session,
    claim: Claim,
    held: Path | None,
    error: QuarantineError | None,
    instance_id: int | None = None,
) -> str:
    """The instance leaves the catalog (its file is in quarantine, or already gone) and the
    job is quarantined with the reason."""
    if not _still_mine(session, claim, JobStatus.QUARANTINED):
        return "skipped"
    if instance_id is not None:
        session.execute(update(Job).where(Job.instance_id == instance_id).values(instance_id=None))
        session.execute(delete(Instance).where(Instance.id == instance_id))
    reason = error.reason.value if error else "processing_error"
    message = (
        error.message if error else "archived file withdrawn; its re-examination did not finish"
    )
    entry = session.scalars(
        select(QuarantineEntry).where(QuarantineEntry.job_id == claim.job_id)
    ).first()
    if entry is None:
        entry = QuarantineEntry(job_id=claim.job_id, stored_name=claim.spool_name)
        session.add(entry)
    entry.reason = reason
    entry.message = f"re-examined after its series showed text: {message}"
    entry.size_bytes = held.stat().st_size if held is not None else 0
    entry.status = QuarantineStatus.HELD
    entry.created_at = utcnow()
    session.execute(update(Job).where(Job.id == claim.job_id).values(last_error_code=reason))
    audit.append(session, audit.job_quarantined(claim.job_id, reason))
    log.info("job %s: archived slice withdrawn to quarantine: %s", claim.job_id, reason)
    return "quarantined"


def _reexamined(instance_id: int, job_id: int) -> audit.AuditRecord:
    return audit.AuditRecord(
        event_id=audit.EventId.INSTANCES_TRANSFERRED,
        action=audit.Action.UPDATE,
        actor="worker",
        object_type="instance",
        object_id=str(instance_id),
        detail={"job": job_id, "pixels": "reexamined", "reason": "series_text"},
    )
