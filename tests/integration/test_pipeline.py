"""The worker's job pipeline against a real catalog (SQLite and PostgreSQL), no queue."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from amana.errors import QuarantineReason
from archive.catalog.models import Instance, Job, JobStatus, QuarantineEntry, Study
from archive.work.jobs import utcnow
from archive.work.pipeline import JobResult, WorkerContext, process_job
from tests.support.pipeline_helpers import enqueue, worker_context
from tests.support.study_factory import make_study


@pytest.fixture()
def ctx(sessions: sessionmaker[Session], tmp_path: Path) -> WorkerContext:
    return worker_context(sessions, tmp_path)


def _archive_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*.dcm")
    }


def test_job_run_twice_ends_as_run_once(ctx: WorkerContext, tmp_path: Path) -> None:
    """Rule: tasks are idempotent — a DONE job re-run does nothing; the same instance received
    twice gives one archive object and one catalog row, byte-identical."""
    study = make_study(tmp_path / "in", layout=[("CT_small.dcm", "ct")])
    first = enqueue(ctx, study.files[0])
    assert process_job(ctx, first) is JobResult.ARCHIVED
    archived = _archive_digest(ctx.archive_dir)
    assert process_job(ctx, first) is JobResult.SKIPPED
    second = enqueue(ctx, study.files[0])
    assert process_job(ctx, second) is JobResult.DUPLICATE
    assert _archive_digest(ctx.archive_dir) == archived
    with ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Instance)) == 1
        assert session.scalar(select(func.count()).select_from(Study)) == 1
        statuses = session.scalars(select(Job.status)).all()
    assert statuses == [JobStatus.DONE, JobStatus.DONE]
    assert list((ctx.spool_dir / "incoming").iterdir()) == []


def test_crash_between_quarantine_move_and_commit_is_finished(
    ctx: WorkerContext, tmp_path: Path
) -> None:
    """Rule: every received instance ends ARCHIVED or QUARANTINED, even when the worker died
    after moving the original aside but before recording why."""
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI" + b"\xff" * 40)
    job_id = enqueue(ctx, bad)
    with ctx.sessions() as session:
        spool_name = session.get_one(Job, job_id).spool_name
    ctx.quarantine_dir.mkdir(parents=True)
    (ctx.spool_dir / "incoming" / spool_name).rename(ctx.quarantine_dir / spool_name)
    assert process_job(ctx, job_id) is JobResult.QUARANTINED
    with ctx.sessions() as session:
        entry = session.scalars(select(QuarantineEntry)).one()
        assert session.get_one(Job, job_id).status is JobStatus.QUARANTINED
    assert entry.reason in {r.value for r in QuarantineReason}
    held = ctx.quarantine_dir / spool_name
    assert held.exists() and (held.stat().st_mode & 0o077) == 0


def test_job_that_never_finishes_is_quarantined_as_worker_lost(
    ctx: WorkerContext, tmp_path: Path
) -> None:
    """Rule: a job whose worker dies on every attempt ends QUARANTINED (worker_lost) after
    three attempts instead of killing workers for ever; its original is kept."""
    from sqlalchemy import update

    study = make_study(tmp_path / "in", layout=[("CT_small.dcm", "ct")])
    job_id = enqueue(ctx, study.files[0])
    with ctx.sessions.begin() as session:
        # Three claims that never finished, the last one long ago.
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status=JobStatus.RUNNING, attempts=3, claimed_at=utcnow() - timedelta(hours=1))
        )
    assert process_job(ctx, job_id) is JobResult.QUARANTINED
    with ctx.sessions() as session:
        entry = session.scalars(select(QuarantineEntry)).one()
    assert entry.reason == "worker_lost"
    assert (ctx.quarantine_dir / entry.stored_name).exists()
