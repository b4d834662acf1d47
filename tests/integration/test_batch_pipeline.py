"""Batches of jobs through the worker's pipeline against a real catalog (SQLite and
PostgreSQL), no queue: one task message carries several job ids."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from amana.celery_app import PROCESS_JOB, PROCESS_JOBS
from amana.settings import Settings
from amana.worker import make_worker_app
from anonymizer.engine import Deidentifier
from archive import audit
from archive.catalog.db import make_engine, make_sessionmaker
from archive.catalog.models import Instance, Job, JobStatus, QuarantineEntry, Series, Study
from archive.catalog.models_governance import AuditEvent
from archive.work.pipeline import (
    COMMIT_TRIES,
    JobResult,
    WorkerContext,
    process_job,
    process_jobs,
)
from tests.support.pipeline_helpers import enqueue, worker_context
from tests.support.study_factory import FakeStudy, make_study

CT = ("CT_small.dcm", "ct")
CORRUPT = b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI" + b"\xff" * 40


@pytest.fixture()
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture()
def ctx(engine: Engine, tmp_path: Path) -> WorkerContext:
    return worker_context(make_sessionmaker(engine), tmp_path)


def _ct_study(root: Path, name: str, count: int, patient_id: str = "AMN-TEST-48213") -> FakeStudy:
    return make_study(root / name, layout=[CT] * count, patient_id=patient_id)


def _catalog_state(sessions: sessionmaker[Session]) -> dict[str, Any]:
    """Everything a re-run must leave as it was."""
    with sessions() as session:
        return {
            "jobs": session.execute(
                select(
                    Job.id,
                    Job.status,
                    Job.attempts,
                    Job.instance_id,
                    Job.duplicate,
                    Job.finished_at,
                    Job.last_error_code,
                ).order_by(Job.id)
            ).all(),
            "instances": session.execute(
                select(
                    Instance.id, Instance.sop_uid, Instance.sha256, Instance.archive_path
                ).order_by(Instance.id)
            ).all(),
            "series": session.scalar(select(func.count()).select_from(Series)),
            "studies": session.execute(
                select(Study.id, Study.status, Study.last_instance_at).order_by(Study.id)
            ).all(),
            "quarantine": session.execute(
                select(QuarantineEntry.job_id, QuarantineEntry.reason).order_by(
                    QuarantineEntry.job_id
                )
            ).all(),
            "audit_seq": session.scalar(select(func.max(AuditEvent.seq))),
        }


def _archive_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*.dcm")
    }


def _archive_events(sessions: sessionmaker[Session], after_seq: int = 0) -> list[AuditEvent]:
    with sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.actor == "worker", AuditEvent.object_type == "study")
                .where(AuditEvent.seq > after_seq)
                .order_by(AuditEvent.seq)
            )
        )


def _assert_every_job_finished_once(ctx: WorkerContext) -> None:
    """Every job DONE (pointing at a catalog row, whose archive file matches it) or
    QUARANTINED (with its original held), one catalog row per SOP UID, nothing left in the
    spool, and the audit chain intact."""
    with ctx.sessions() as session:
        jobs = session.scalars(select(Job)).all()
        instances = {i.id: i for i in session.scalars(select(Instance))}
        quarantined = {q.job_id: q for q in session.scalars(select(QuarantineEntry))}
        report = audit.verify(session)
    assert {job.status for job in jobs} <= {JobStatus.DONE, JobStatus.QUARANTINED}
    for job in jobs:
        if job.status is JobStatus.DONE:
            assert job.instance_id in instances
        else:
            assert (ctx.quarantine_dir / quarantined[job.id].stored_name).exists()
    sop_uids = [i.sop_uid for i in instances.values()]
    assert len(sop_uids) == len(set(sop_uids))
    for instance in instances.values():
        data = (ctx.archive_dir / instance.archive_path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == instance.sha256
    assert list((ctx.spool_dir / "incoming").iterdir()) == []
    assert report.ok, report.problems


def test_mixed_batch_ends_every_job_once_and_rerun_changes_nothing(
    ctx: WorkerContext, tmp_path: Path
) -> None:
    """Rules: every received instance ends ARCHIVED or QUARANTINED, whatever else shares its
    batch; the catalog holds one row per instance; a batch run twice ends exactly as run
    once; the audit trail records one event per study and batch, with new UIDs only."""
    first = _ct_study(tmp_path, "a", 4)
    second = _ct_study(tmp_path, "b", 2, patient_id="AMN-TEST-99107")
    done_before = enqueue(ctx, first.files[0])
    assert process_job(ctx, done_before) is JobResult.ARCHIVED
    seq_before = _catalog_state(ctx.sessions)["audit_seq"]

    corrupt = tmp_path / "corrupt.dcm"
    corrupt.write_bytes(CORRUPT)
    again = enqueue(ctx, first.files[0])  # already archived by an earlier job
    bad = enqueue(ctx, corrupt)
    new_a = [enqueue(ctx, f) for f in first.files[1:]]
    twice = [enqueue(ctx, second.files[0]), enqueue(ctx, second.files[0])]
    new_b = enqueue(ctx, second.files[1])
    batch = [done_before, again, bad, *new_a, *twice, new_b, new_a[0]]

    results = process_jobs(ctx, batch)

    assert set(results) == set(batch)
    assert results[done_before] is JobResult.SKIPPED
    assert results[again] is JobResult.DUPLICATE
    assert results[bad] is JobResult.QUARANTINED
    assert sorted(results[j] for j in twice) == [JobResult.ARCHIVED, JobResult.DUPLICATE]
    archived = {j for j, r in results.items() if r is JobResult.ARCHIVED}
    assert archived == {*new_a, new_b, *(j for j in twice if results[j] is JobResult.ARCHIVED)}
    _assert_every_job_finished_once(ctx)
    with ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Instance)) == 6
        assert session.scalar(select(func.count()).select_from(Study)) == 2
        assert session.get_one(QuarantineEntry, 1).job_id == bad

    events = _archive_events(ctx.sessions, seq_before)
    assert len(events) == 2  # one per study of the batch
    listed = [json.loads(e.detail) for e in events]
    assert sorted(j for d in listed for j in d["job_ids"]) == sorted(archived)
    with ctx.sessions() as session:
        for event_, detail in zip(events, listed, strict=True):
            assert detail["instances"] == len(detail["sop_uids"]) == len(detail["job_ids"])
            study_of = session.scalars(
                select(Study.study_uid)
                .join(Series, Series.study_id == Study.id)
                .join(Instance, Instance.series_id == Series.id)
                .where(Instance.sop_uid.in_(detail["sop_uids"]))
                .distinct()
            ).all()
            assert study_of == [event_.object_id]
    original = {*first.original_uids, *second.original_uids, first.patient_id, second.patient_id}
    for event_ in events:
        assert not any(value in event_.detail for value in original)
        assert event_.object_id not in original

    state, files = _catalog_state(ctx.sessions), _archive_digest(ctx.archive_dir)
    rerun = process_jobs(ctx, batch)
    assert set(rerun.values()) == {JobResult.SKIPPED}
    assert _catalog_state(ctx.sessions) == state
    assert _archive_digest(ctx.archive_dir) == files


@contextmanager
def _meanwhile(engine: Engine, *steps: tuple[str, Callable[[], None]]) -> Iterator[None]:
    """Run each step's action once, in order, right before the first statement containing
    its marker (after the previous step ran): other workers committing between this batch's
    lookups and its writes. Their own statements do not trigger further steps."""
    pending = list(steps)
    running = False

    def before(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        nonlocal running
        if running or not pending or pending[0][0] not in " ".join(statement.split()):
            return
        _, action = pending.pop(0)
        running = True
        try:
            action()
        finally:
            running = False

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert not pending, "a step never ran: the statements it waited for changed"


def _other_worker(ctx: WorkerContext, job_id: int) -> Callable[[], None]:
    """Another worker archiving `job_id`'s instance, for `_meanwhile`."""

    def run() -> None:
        assert process_job(ctx, job_id) is JobResult.ARCHIVED

    return run


def test_batch_that_loses_a_race_for_an_instance_ends_as_if_run_alone(
    ctx: WorkerContext, engine: Engine, tmp_path: Path
) -> None:
    """Rule: an instance archived by another worker after the batch looked it up ends as one
    catalog row and one archive file, its job a duplicate; the rest of the batch archives."""
    study = _ct_study(tmp_path, "a", 3)
    assert process_job(ctx, enqueue(ctx, study.files[2])) is JobResult.ARCHIVED
    batch = [enqueue(ctx, study.files[0]), enqueue(ctx, study.files[1])]
    other = enqueue(ctx, study.files[0])

    with _meanwhile(engine, ("FROM series WHERE", _other_worker(ctx, other))):
        results = process_jobs(ctx, batch)

    assert results == {batch[0]: JobResult.DUPLICATE, batch[1]: JobResult.ARCHIVED}
    _assert_every_job_finished_once(ctx)
    with ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Instance)) == 3


def test_batch_that_loses_a_race_for_a_new_study_archives_all(
    ctx: WorkerContext, engine: Engine, tmp_path: Path
) -> None:
    """Rule: when another worker creates the same patient, study and series first, the
    batch still archives every instance, under that one study."""
    study = _ct_study(tmp_path, "a", 3)
    batch = [enqueue(ctx, study.files[0]), enqueue(ctx, study.files[1])]
    other = enqueue(ctx, study.files[2])

    with _meanwhile(engine, ("INSERT INTO patients", _other_worker(ctx, other))):
        results = process_jobs(ctx, batch)

    assert set(results.values()) == {JobResult.ARCHIVED}
    _assert_every_job_finished_once(ctx)
    with ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Study)) == 1
        assert session.scalar(select(func.count()).select_from(Series)) == 1
        assert session.scalar(select(func.count()).select_from(Instance)) == 3


def test_batch_that_loses_races_on_consecutive_tries_ends_as_if_run_alone(
    ctx: WorkerContext, engine: Engine, tmp_path: Path
) -> None:
    """Rule: a batch rolled back by a race is tried again whole, and again if it loses
    another race: in the end no instance is lost or cataloged twice, its duplicate job is
    marked as such, and the audit trail names each archived job once."""
    study = _ct_study(tmp_path, "a", 3)
    batch = [enqueue(ctx, study.files[0]), enqueue(ctx, study.files[1])]
    creates_study = enqueue(ctx, study.files[2])
    takes_instance = enqueue(ctx, study.files[0])

    # First try: the patient, study and series appear before this batch creates them.
    # Second try: one of the batch's own instances is archived after its lookup.
    with _meanwhile(
        engine,
        ("INSERT INTO patients", _other_worker(ctx, creates_study)),
        ("FROM series WHERE", _other_worker(ctx, takes_instance)),
    ):
        results = process_jobs(ctx, batch)

    assert results == {batch[0]: JobResult.DUPLICATE, batch[1]: JobResult.ARCHIVED}
    _assert_every_job_finished_once(ctx)
    with ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Study)) == 1
        assert session.scalar(select(func.count()).select_from(Instance)) == 3
        duplicate = session.get_one(Job, batch[0])
        owner = session.get_one(Job, takes_instance)
    assert duplicate.duplicate and duplicate.instance_id == owner.instance_id
    listed = [j for e in _archive_events(ctx.sessions) for j in json.loads(e.detail)["job_ids"]]
    assert sorted(listed) == sorted([batch[1], creates_study, takes_instance])


def test_batch_that_keeps_losing_races_is_left_whole_for_the_sweeper(
    ctx: WorkerContext, engine: Engine, tmp_path: Path
) -> None:
    """Rule: a batch whose commit conflicts on every try gives up without committing any of
    it and without deleting a spooled original; run again later, it ends every job once."""
    study = _ct_study(tmp_path, "a", COMMIT_TRIES + 1)
    batch = [enqueue(ctx, f) for f in study.files]
    others = [enqueue(ctx, f) for f in study.files[:COMMIT_TRIES]]

    steps = [("FROM series WHERE", _other_worker(ctx, job_id)) for job_id in others]
    with pytest.raises(IntegrityError), _meanwhile(engine, *steps):
        process_jobs(ctx, batch)

    with ctx.sessions() as session:
        statuses = {session.get_one(Job, job_id).status for job_id in batch}
    assert statuses == {JobStatus.RUNNING}
    assert len(list((ctx.spool_dir / "incoming").iterdir())) == len(batch)

    ctx.stale_after = timedelta(0)  # as the sweeper finds the claims stale
    results = process_jobs(ctx, batch)
    assert [results[j] for j in batch] == [JobResult.DUPLICATE] * COMMIT_TRIES + [
        JobResult.ARCHIVED
    ]
    _assert_every_job_finished_once(ctx)


WORKER_KILLED = 70


def _run_in_dying_worker(ctx: WorkerContext, job_ids: list[int], poison: bytes) -> int | None:
    """process_jobs in a forked worker process whose decoder kills the process (as a native
    crash or the time limit would) on the `poison` input; returns the exit code."""

    def work() -> None:
        engine = ctx.sessions.kw["bind"]
        engine.dispose(close=False)  # the parent's connections stay the parent's
        deidentify = ctx.deidentifier.deidentify

        def dying(data: bytes) -> Any:
            if data == poison:
                os._exit(WORKER_KILLED)
            return deidentify(data)

        ctx.deidentifier.deidentify = dying  # type: ignore[method-assign]
        process_jobs(ctx, job_ids)

    process = multiprocessing.get_context("fork").Process(target=work)
    process.start()
    process.join(120)
    return process.exitcode


def test_only_the_job_that_kills_workers_is_quarantined_not_its_batch_mates(
    ctx: WorkerContext, tmp_path: Path
) -> None:
    """Rule: a job whose worker dies on every attempt ends QUARANTINED (worker_lost) after
    three attempts; the jobs that shared its batch end ARCHIVED, not worker_lost."""
    study = _ct_study(tmp_path, "a", 4)
    batch = [enqueue(ctx, f) for f in study.files]
    killer = batch[1]
    ctx.stale_after = timedelta(0)  # each re-run finds the dead worker's claims stale

    exit_codes = []
    for _ in range(8):
        exit_codes.append(_run_in_dying_worker(ctx, batch, study.files[1].read_bytes()))
        if exit_codes[-1] == 0:
            break

    assert exit_codes[-1] == 0 and set(exit_codes[:-1]) == {WORKER_KILLED}
    _assert_every_job_finished_once(ctx)
    with ctx.sessions() as session:
        statuses = {j.id: j.status for j in session.scalars(select(Job))}
        entry = session.scalars(select(QuarantineEntry)).one()
    assert entry.job_id == killer and entry.reason == "worker_lost"
    assert statuses == {
        job_id: JobStatus.QUARANTINED if job_id == killer else JobStatus.DONE for job_id in batch
    }


def _statements(engine: Engine, run: Callable[[], object]) -> int:
    count = 0

    def before(*_args: object) -> None:
        nonlocal count
        count += 1

    event.listen(engine, "before_cursor_execute", before)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", before)
    return count


def test_a_batch_of_one_study_costs_the_statements_of_one_job(
    ctx: WorkerContext, engine: Engine, tmp_path: Path
) -> None:
    """Rule (throughput): claiming and cataloging a batch of one study's instances takes as
    many SQL statements as one instance: the catalog's cost is per batch, not per job."""
    study = _ct_study(tmp_path, "a", 12)
    jobs = [enqueue(ctx, f) for f in study.files]
    process_jobs(ctx, jobs[:1])  # the study exists from here on

    one = _statements(engine, lambda: process_jobs(ctx, jobs[1:2]))
    ten = _statements(engine, lambda: process_jobs(ctx, jobs[2:12]))

    assert ten == one
    _assert_every_job_finished_once(ctx)


def test_worker_takes_both_message_formats_and_cannot_lose_either(tmp_path: Path) -> None:
    """Rule: a worker consumes batches of job ids and the one-id messages earlier versions
    published, and acknowledges either only after the work (handing it back if it dies)."""
    app = make_worker_app(Settings(home=tmp_path))
    for name in (PROCESS_JOB, PROCESS_JOBS):
        task = app.tasks[name]
        assert task.acks_late and task.reject_on_worker_lost
        assert app.conf.task_time_limit == Settings(home=tmp_path).job_time_limit_s


class _SlowFirstImage:
    """The worker's engine, whose first image takes longer than the stale timeout (an OCR
    of a large cine under load), and which lets a second worker in when the batch reaches
    its second image."""

    def __init__(self, engine: Deidentifier, slow_s: float) -> None:
        self._engine, self._slow_s = engine, slow_s
        self.calls = 0
        self.second_started = threading.Event()
        self.second_may_go = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def deidentify(self, data: bytes, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 2:
            self.second_started.set()
            self.second_may_go.wait(60)
        outcome = self._engine.deidentify(data, **kwargs)
        if self.calls == 1:
            time.sleep(self._slow_s)
        return outcome


def test_a_batch_longer_than_the_stale_timeout_is_not_run_twice(
    ctx: WorkerContext, tmp_path: Path
) -> None:
    """Rule: a worker renews the claims of the batch it works through; a batch whose first
    image alone outlasts the stale timeout keeps the rest of it, and a second worker handed
    the same jobs (the sweeper re-sends stale RUNNING jobs) runs none of them again."""
    study = _ct_study(tmp_path, "long", 4)
    ids = [enqueue(ctx, f) for f in study.files]
    ctx.stale_after = timedelta(seconds=2)
    slow = _SlowFirstImage(ctx.deidentifier, slow_s=2.5)
    ctx.deidentifier = cast(Deidentifier, slow)
    first: dict[int, JobResult] = {}
    worker = threading.Thread(target=lambda: first.update(process_jobs(ctx, ids)))
    worker.start()
    try:
        assert slow.second_started.wait(120)
        other = worker_context(ctx.sessions, tmp_path)
        other.stale_after = ctx.stale_after
        second = process_jobs(other, ids)
    finally:
        slow.second_may_go.set()
        worker.join(120)
    assert set(second.values()) == {JobResult.SKIPPED}, second
    assert set(first.values()) == {JobResult.ARCHIVED}, first
    _assert_every_job_finished_once(ctx)
