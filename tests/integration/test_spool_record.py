"""The spool is the record of what arrived: every received file gets exactly one job row,
whoever makes it (the receiver's batcher or the recovery scan), and each row reaches the
queue once, after its commit."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from archive.catalog.db import make_engine, make_sessionmaker
from archive.catalog.models import Base, Job, JobStatus
from archive.catalog.models_governance import AuditEvent
from archive.work.jobs import NewJob, create_jobs_if_absent
from archive.work.publish import attach_job_sink
from ingest.dir_flush import GroupedFlush
from ingest.job_batcher import AssociationDone, JobBatcher
from ingest.recovery import recover_spool
from ingest.spool import Spool
from ingest.spool_names import parse_received, received_name
from tests.support.harness import wait_until


def _spool_with(tmp_path: Path, names: list[str]) -> Spool:
    spool = Spool(tmp_path / "spool", 0)
    for name in names:
        (spool.incoming / name).write_bytes(b"\0" * 200)
    return spool


def _jobs(sessions: sessionmaker[Session]) -> dict[str, tuple[str | None, int | None, int]]:
    with sessions() as session:
        return {
            name: (ae, source, size)
            for name, ae, source, size in session.execute(
                select(Job.spool_name, Job.calling_ae, Job.source_id, Job.size_bytes)
            )
        }


@pytest.mark.parametrize(
    ("calling_ae", "source_id"),
    [("CT_SCANNER_01", 7), (None, None), ("A/B C\\..", 36**6 - 1), ("ABCDEFGHIJKLMNOP", 0)],
)
def test_a_spool_name_carries_what_the_job_row_needs(
    calling_ae: str | None, source_id: int | None
) -> None:
    """Rule: the calling AE title and registered source survive in the spool name (which
    fits jobs.spool_name), and every name is new."""
    for size in (0, 1, 555_000, 36**7 - 1):
        names = {received_name(size, calling_ae, source_id) for _ in range(200)}
        assert len(names) == 200
        for name in names:
            assert len(name) <= 64
            parsed = parse_received(name)
            assert parsed is not None
            assert (parsed.size, parsed.calling_ae, parsed.source_id) == (
                size,
                calling_ae,
                source_id,
            )
    # What folder imports name their files is never taken for a received instance.
    assert parse_received("0123456789abcdef0123456789abcdef.dcm") is None


def test_recovery_makes_each_missing_row_once(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: received files without a job row (a receiver killed between the rename and
    the row) get one, with the AE title and source of their name; a second scan makes
    none, files of other origins are left alone, and each new row is queued once."""
    published: list[int] = []
    attach_job_sink(sessions, published.extend)
    received = [received_name(200, "PACS1", None) for _ in range(5)]
    spool = _spool_with(tmp_path, [*received, "0123456789abcdef0123456789abcdef.dcm"])
    assert recover_spool(spool, sessions, node="n1", settle_s=0) == 5
    assert recover_spool(spool, sessions, node="n1", settle_s=0) == 0
    known: set[str] = set()
    for _ in range(2):  # remembering which files have rows changes nothing
        assert recover_spool(spool, sessions, node="n1", settle_s=0, known=known) == 0
        assert known == set(received)
    jobs = _jobs(sessions)
    assert jobs == {name: ("PACS1", None, 200) for name in received}
    with sessions() as session:
        assert set(session.scalars(select(Job.status))) == {JobStatus.RECEIVED}
        assert set(session.scalars(select(Job.node))) == {"n1"}
        ids = set(session.scalars(select(Job.id)))
    assert sorted(published) == sorted(ids)


def test_recovery_leaves_fresh_files_to_the_batcher(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: a file that may still be in its handler's hands (just renamed) is not made a
    job by the periodic scan, which could otherwise give a row to a file whose directory
    flush then fails."""
    spool = _spool_with(tmp_path, [received_name(200, "PACS1", 3)])
    assert recover_spool(spool, sessions, node="n1", settle_s=3600) == 0
    assert _jobs(sessions) == {}


def test_recovery_removes_what_a_power_cut_cut_short(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: a received file shorter than its name says (renamed in, then cut short by a
    power cut before its flush, so never answered) is removed, never made a job; a file
    that has a row is never removed, whatever its size."""
    whole = received_name(200, "PACS1", None)
    cut = received_name(5000, "PACS1", None)
    answered = received_name(5000, "PACS1", None)
    spool = _spool_with(tmp_path, [whole, cut, answered])
    with sessions.begin() as session:
        create_jobs_if_absent(session, [NewJob(answered, 5000, "PACS1", "dicom")])
    assert recover_spool(spool, sessions, node="n1", settle_s=0) == 1
    assert sorted(p.name for p in spool.incoming.iterdir()) == sorted([whole, answered])
    assert set(_jobs(sessions)) == {whole, answered}


def test_batcher_and_scan_together_make_one_row_per_file(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: the batcher and the recovery scan racing over the same files (and the batcher
    given a file twice) still make exactly one row per file, each queued exactly once."""
    published: list[int] = []
    attach_job_sink(sessions, published.extend)
    names = [received_name(200, "PACS2", None) for _ in range(60)]
    spool = _spool_with(tmp_path, names)
    batcher = JobBatcher(sessions, batch_max=7)
    for name in names + names[:10]:
        batcher.submit(NewJob(name, 200, "PACS2", "dicom", None, "n1"))
    scans = [
        threading.Thread(
            target=recover_spool, args=(spool, sessions), kwargs={"node": "n1", "settle_s": 0}
        )
        for _ in range(2)
    ]
    batcher.start()
    for scan in scans:
        scan.start()
    for scan in scans:
        scan.join(120)
    assert batcher.stop(120) == 0
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == len(names)
        ids = sorted(session.scalars(select(Job.id)))
    assert set(_jobs(sessions)) == set(names)
    assert sorted(published) == ids


def test_the_association_event_names_its_job_ids(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: the per-association audit event, written behind the rows, names the job ids of
    that association's instances (and only those)."""
    batcher = JobBatcher(sessions)
    mine = [received_name(1, "PACS3", None) for _ in range(4)]
    other = [received_name(1, "PACS4", None) for _ in range(3)]
    for name in mine + other:
        batcher.submit(NewJob(name, 1, "PACS3", "dicom"))
    batcher.submit(AssociationDone("PACS3", "10.0.0.1", tuple(mine)))
    batcher.start()
    assert batcher.stop(120) == 0
    with sessions() as session:
        ids = sorted(session.scalars(select(Job.id).where(Job.spool_name.in_(mine))))
        details = [
            json.loads(event.detail)
            for event in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))
            if event.actor == "ae:PACS3"
        ]
    assert details == [{"instances": 4, "job_ids": ids}]


def test_a_batch_that_cannot_be_written_is_kept(tmp_path: Path) -> None:
    """Rule: while the catalog cannot be written, the batcher keeps every row, in order,
    and writes them all, once, when it can."""
    db = tmp_path / "catalog.db"
    url = f"sqlite:///{db}"
    sessions = make_sessionmaker(make_engine(url))  # no tables yet: every write fails
    batcher = JobBatcher(sessions)
    names = [received_name(1, "PACS5", None) for _ in range(20)]
    for name in names:
        batcher.submit(NewJob(name, 1, "PACS5", "dicom"))
    batcher.start()
    wait_until(lambda: batcher.failures >= 1, timeout=60, interval=0.05)
    assert batcher.pending_names() == set(names)
    Base.metadata.create_all(make_engine(url))
    wait_until(batcher.idle, timeout=60, interval=0.05)
    assert batcher.stop(60) == 0
    assert set(_jobs(sessions)) == set(names)


def test_one_flush_answers_every_rename_made_before_it(tmp_path: Path) -> None:
    """Rule: each caller returns only after a flush that started after it asked; a failed
    flush fails every caller waiting on it (none of them may answer Success)."""
    started: list[int] = []
    lock = threading.Lock()

    def flush() -> None:
        with lock:
            started.append(1)

    grouped = GroupedFlush(flush)
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def call() -> None:
        barrier.wait()
        try:
            grouped()
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and 1 <= len(started) <= 16

    def failing() -> None:
        raise OSError("gone")

    broken = GroupedFlush(failing)
    errors.clear()
    threads = [threading.Thread(target=lambda: _record(broken, errors)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(errors) == 8 and all(isinstance(e, OSError) for e in errors)


def _record(grouped: GroupedFlush, errors: list[BaseException]) -> None:
    try:
        grouped()
    except Exception as exc:  # noqa: BLE001 - recorded for the assertion
        errors.append(exc)
