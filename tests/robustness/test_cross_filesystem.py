"""The spool, the archive and the quarantine may sit on different filesystems (a spool on
its own fast disk is the usual advice): moving a file between them must still be durable
and must not leave a job stuck. /dev/shm is a tmpfs on Linux, the test's tmp_path is not."""

from __future__ import annotations

import dataclasses
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from archive.catalog.models import Job, JobStatus
from archive.fsio import durable_move
from archive.work.pipeline import JobResult, process_job
from tests.support.pipeline_helpers import enqueue, worker_context

SHM = Path("/dev/shm")


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A folder on a filesystem other than tmp_path's."""
    folder = SHM / f"amana-test-{uuid.uuid4().hex}"
    folder.mkdir(mode=0o700)
    # The test proves nothing if both sit on one filesystem: say so instead of passing.
    assert os.stat(folder).st_dev != os.stat(tmp_path).st_dev, "/dev/shm is not a separate fs"
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_durable_move_across_filesystems(other_filesystem: Path, tmp_path: Path) -> None:
    """Rule: a move across filesystems leaves the file whole at its destination, with the
    mode asked for, and the source gone (never both missing, never a partial file)."""
    src = other_filesystem / "a.dcm"
    src.write_bytes(b"x" * 100_000)
    dest = tmp_path / "quarantine" / "a.dcm"

    durable_move(src, dest, mode=0o600)

    assert dest.read_bytes() == b"x" * 100_000
    assert dest.stat().st_mode & 0o777 == 0o600
    assert not src.exists()
    assert [p.name for p in dest.parent.iterdir()] == ["a.dcm"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_quarantine_on_another_filesystem_than_the_spool(
    sessions: sessionmaker[Session], tmp_path: Path, other_filesystem: Path
) -> None:
    """Rule: an instance is quarantined (never stuck RUNNING and re-sent for ever) when the
    spool and the quarantine are on different filesystems."""
    ctx = dataclasses.replace(worker_context(sessions, tmp_path), spool_dir=other_filesystem)
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 64)
    job_id = enqueue(ctx, broken)

    assert process_job(ctx, job_id) is JobResult.QUARANTINED

    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status is JobStatus.QUARANTINED
    assert not list((other_filesystem / "incoming").iterdir())
    assert [p for p in ctx.quarantine_dir.rglob("*") if p.is_file()]
