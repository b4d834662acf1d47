"""The archive store is called with no catalog transaction open (archive/work/storing.py),
against a real Orthanc and a real PostgreSQL: a slow or hung archive holds no catalog
connection and no row lock, and a crash between the store and the catalog commit loses
nothing and doubles nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from archive.catalog.db import make_engine, make_sessionmaker
from archive.catalog.migrate import upgrade
from archive.catalog.models import Instance, Job, JobStatus
from archive.stores import StoreCredentials
from archive.stores.dicomweb import DicomWebStore
from archive.work.pipeline import JobResult, WorkerContext, process_jobs
from tests.support.orthanc import PASSWORD, USER, Orthanc
from tests.support.pipeline_helpers import enqueue, process_to_end, worker_context
from tests.support.study_factory import make_study

pytestmark = pytest.mark.services

# Client sessions of the catalog (autovacuum is not one), other than the one asking, that
# are inside a transaction, and the locks client sessions hold.
OPEN_TRANSACTIONS = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    " AND xact_start IS NOT NULL"
)
HELD_LOCKS = text(
    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE a.datname = current_database() AND a.backend_type = 'client backend'"
    " AND l.pid <> pg_backend_pid()"
)


class _Crash(BaseException):
    """The worker process dying: nothing after it runs, no handler catches it."""


class _Watched(DicomWebStore):
    """The real DICOMweb store; before each store request it looks, from a connection of
    its own, at what the rest of the catalog's sessions hold open."""

    def __init__(self, server: Orthanc, watcher: Engine) -> None:
        super().__init__(server.archive_url, StoreCredentials(user=USER, password=PASSWORD))
        self.watcher = watcher
        self.seen: list[tuple[int, int]] = []
        self.crash_after_store = False

    def put_many(self, items: Sequence[tuple[Path, bytes]]) -> None:
        with self.watcher.connect() as conn:
            transactions = int(conn.execute(OPEN_TRANSACTIONS).scalar_one())
            locks = int(conn.execute(HELD_LOCKS).scalar_one())
        self.seen.append((transactions, locks))
        super().put_many(items)
        if self.crash_after_store:
            raise _Crash


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    server = Orthanc(tmp_path_factory.mktemp("orthanc")).start()
    yield server
    server.stop()


@pytest.fixture()
def ctx(pg_url: str, tmp_path: Path) -> Iterator[WorkerContext]:
    upgrade(pg_url)
    engine = make_engine(pg_url)
    context = worker_context(make_sessionmaker(engine), tmp_path)
    yield context
    engine.dispose()


def test_no_transaction_is_open_while_the_archive_stores(
    ctx: WorkerContext, orthanc: Orthanc, pg_url: str, tmp_path: Path
) -> None:
    """Rule: the worker calls the DICOMweb archive with no catalog transaction open (no
    session of the catalog is inside a transaction, no lock is held), batch after batch;
    every instance still ends archived once and cataloged once."""
    watcher = make_engine(pg_url)
    store = _Watched(orthanc, watcher)
    ctx.store = store
    study = make_study(tmp_path / "study")
    jobs = [enqueue(ctx, f) for f in study.files]
    results = process_to_end(ctx, jobs)
    assert set(results.values()) == {JobResult.ARCHIVED}
    assert store.seen, "the archive was never called"
    assert store.seen == [(0, 0)] * len(store.seen), "a catalog transaction was open"
    with ctx.sessions() as session:
        sop_uids = session.scalars(select(Instance.sop_uid)).all()
    assert len(sop_uids) == len(study.files)
    assert all(store.count(uid) == 1 for uid in sop_uids)
    watcher.dispose()


def test_a_crash_between_store_and_commit_loses_and_doubles_nothing(
    ctx: WorkerContext, orthanc: Orthanc, pg_url: str, tmp_path: Path
) -> None:
    """Rules: an instance is cataloged as archived only once the archive confirmed it; a
    worker that dies after the archive stored a batch and before the catalog commit leaves
    the jobs unfinished, nothing cataloged; run again, the batch is stored again and the
    archive still holds one copy of each instance (Orthanc keeps one per SOP Instance UID
    and confirms the second STOW-RS), cataloged once, with the digest of what it holds."""
    watcher = make_engine(pg_url)
    store = _Watched(orthanc, watcher)
    store.crash_after_store = True
    ctx.store = store
    study = make_study(tmp_path / "study", patient_name="Fictif^Yassine", patient_id="AMN-77310")
    jobs = [enqueue(ctx, f) for f in study.files]
    held_before = len(orthanc.sop_uids())
    with pytest.raises(_Crash):
        process_jobs(ctx, jobs)
    with ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Instance)) == 0
        statuses = set(session.scalars(select(Job.status).where(Job.id.in_(jobs))))
    assert statuses <= {JobStatus.RUNNING, JobStatus.HELD, JobStatus.RECEIVED}
    assert len(orthanc.sop_uids()) == held_before + len(study.files), "the store did not run"

    store.crash_after_store = False
    # The claims of the dead worker are stale at once for the next one.
    ctx.stale_after = timedelta(0)
    results = process_to_end(ctx, jobs)
    assert set(results.values()) == {JobResult.ARCHIVED}
    with ctx.sessions() as session:
        cataloged = session.execute(
            select(Instance.sop_uid, Instance.archive_path, Instance.sha256)
        ).all()
    assert len(cataloged) == len(study.files)
    for sop_uid, relpath, sha256 in cataloged:
        assert store.count(sop_uid) == 1
        data = store.read(Path(relpath))
        assert data is not None
        assert hashlib.sha256(data).hexdigest() == sha256
    watcher.dispose()
