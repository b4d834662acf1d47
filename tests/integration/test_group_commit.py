"""The receiver's group commit: each waiting instance gets its own committed job row, or an
error; never a row without an answer or an answer without a row."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from archive.catalog.models import Job, JobStatus
from archive.fsio import fsync_dir
from archive.work.jobs import NewJob
from archive.work.publish import attach_job_sink
from ingest.group_commit import JobGroupCommit


def _commit_all(group: JobGroupCommit, names: list[str]) -> dict[str, int | BaseException]:
    """Every name committed from its own thread, all released at once."""
    outcome: dict[str, int | BaseException] = {}
    start = threading.Barrier(len(names))

    def one(name: str) -> None:
        start.wait()
        try:
            outcome[name] = group.commit(NewJob(name, 10, "SENDER", "dicom"))
        except Exception as exc:  # noqa: BLE001 - recorded for the assertions
            outcome[name] = exc

    threads = [threading.Thread(target=one, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcome


def test_concurrent_instances_each_get_their_own_committed_row(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: instances committed at the same time (from several associations) end with one
    RECEIVED job each, the id each caller got is the row of its own spool file, and every
    id reaches the queue sink once, after its commit."""
    published: list[int] = []
    attach_job_sink(sessions, published.extend)
    flushes: list[int] = []

    def flush() -> None:
        fsync_dir(tmp_path)
        flushes.append(1)

    group = JobGroupCommit(sessions, before_commit=flush, group_max=8)
    names = [f"{i:032x}.dcm" for i in range(40)]
    outcome = _commit_all(group, names)
    assert all(isinstance(job_id, int) for job_id in outcome.values())
    with sessions() as session:
        rows = {name: job_id for name, job_id in session.execute(select(Job.spool_name, Job.id))}
        statuses = set(session.scalars(select(Job.status)).all())
    assert rows == outcome
    assert statuses == {JobStatus.RECEIVED}
    assert sorted(published) == sorted(rows.values())
    assert 1 <= len(flushes) <= len(names)


def test_a_failed_flush_answers_every_waiting_instance_with_an_error(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: when the spool directory cannot be flushed, no instance of the group gets a
    job row and every one of them gets the error (so none is answered Success)."""
    gone = tmp_path / "removed"
    group = JobGroupCommit(sessions, before_commit=lambda: fsync_dir(gone))
    outcome = _commit_all(group, [f"{i:032x}.dcm" for i in range(6)])
    assert all(isinstance(result, OSError) for result in outcome.values())
    with sessions() as session:
        assert session.scalars(select(Job.id)).all() == []


@pytest.mark.parametrize("size", [1, 3])
def test_group_commit_ids_follow_the_order_given(
    sessions: sessionmaker[Session], size: int
) -> None:
    """Rule: one caller at a time (one association) still gets its own row's id."""
    group = JobGroupCommit(sessions)
    for i in range(size):
        name = f"{i:032x}.dcm"
        job_id = group.commit(NewJob(name, i, None, "dicom"))
        with sessions() as session:
            assert session.get_one(Job, job_id).spool_name == name
