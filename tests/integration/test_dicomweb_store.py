"""The DICOMweb archive store against a real Orthanc (Debian's, with its DICOMweb plugin):
what it confirms is there once, what it reads back is what was stored, and an archive that
is down makes jobs wait instead of losing or doubling them."""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from anonymizer.paths import relpath_for
from archive.catalog.db import make_engine, make_sessionmaker
from archive.catalog.migrate import upgrade
from archive.catalog.models import Instance, Job, JobStatus
from archive.stores import ArchiveUnavailable, StoreCredentials
from archive.stores.dicomweb import DicomWebStore
from archive.work.pipeline import JobResult, WorkerContext, process_jobs
from tests.support.orthanc import PASSWORD, USER, Orthanc
from tests.support.pipeline_helpers import enqueue, process_to_end, worker_context
from tests.support.pki import TestCA
from tests.support.study_factory import identifying_strings, make_study
from tests.support.tls_proxy import TlsProxy


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    server = Orthanc(tmp_path_factory.mktemp("orthanc")).start()
    yield server
    server.stop()


def _store(server: Orthanc, password: str = PASSWORD) -> DicomWebStore:
    return DicomWebStore(server.archive_url, StoreCredentials(user=USER, password=password))


def _instance() -> tuple[Path, bytes]:
    """A de-identified-looking CT instance under new UIDs, and its archive path."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = "PSEUDO^ANON"
    ds.PatientID = "PSEUDO-0001"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    relpath = relpath_for(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    return relpath, buffer.getvalue()


def _sop(relpath: Path) -> str:
    return relpath.name.removesuffix(".dcm")


def test_a_resent_instance_is_stored_once_and_read_back_unchanged(orthanc: Orthanc) -> None:
    """Rule: the store is idempotent by SOP Instance UID: storing the same instance three
    times (a crash after the store, before the catalog commit, then the retries) leaves one
    instance in the archive, by QIDO-RS and by Orthanc's own count; WADO-RS gives back the
    very bytes stored."""
    store = _store(orthanc)
    relpath, data = _instance()
    before = len(orthanc.instance_ids())
    for _ in range(3):
        store.put_many([(relpath, data)])
    assert store.count(_sop(relpath)) == 1
    assert len(orthanc.instance_ids()) == before + 1
    assert orthanc.sop_uids().count(_sop(relpath)) == 1
    read = store.read(relpath)
    assert read is not None and hashlib.sha256(read).digest() == hashlib.sha256(data).digest()


def test_replace_and_withdraw(orthanc: Orthanc, tmp_path: Path) -> None:
    """Rules: a replaced instance (re-examined pixels) is the new bytes, once; a withdrawn
    one is gone from the archive and kept in quarantine, readable by the service account
    only; reading or withdrawing what is not there says so instead of failing."""
    store = _store(orthanc)
    relpath, data = _instance()
    store.put_many([(relpath, data)])
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.ImageComments = "re-examined"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    store.replace(relpath, buffer.getvalue())
    assert store.read(relpath) == buffer.getvalue()
    assert store.count(_sop(relpath)) == 1
    held = tmp_path / "held.dcm"
    assert store.withdraw(relpath, held)
    assert held.read_bytes() == buffer.getvalue()
    assert held.stat().st_mode & 0o777 == 0o600
    assert store.count(_sop(relpath)) == 0
    assert store.read(relpath) is None
    assert not store.withdraw(relpath, tmp_path / "again.dcm")


def test_refusals_name_no_secret(
    orthanc: Orthanc, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Rules: a wrong password and an archive that is down are ArchiveUnavailable (jobs
    wait), never a confirmation; neither the error text nor the log carries the password
    or the token."""
    caplog.set_level(logging.DEBUG)
    relpath, data = _instance()
    with pytest.raises(ArchiveUnavailable) as refused:
        _store(orthanc, password="wrong-made-up-password").put_many([(relpath, data)])
    assert "401" in refused.value.message
    down = Orthanc(tmp_path / "down")  # configured, never started: its port refuses
    token_store = DicomWebStore(down.archive_url, StoreCredentials(token="made-up-token-value"))
    with pytest.raises(ArchiveUnavailable) as unreachable:
        token_store.put_many([(relpath, data)])
    for text in (refused.value.message, unreachable.value.message, caplog.text):
        assert "wrong-made-up-password" not in text
        assert "made-up-token-value" not in text
    assert "made-up-token-value" not in repr(token_store)
    assert _store(orthanc).count(_sop(relpath)) == 0


def test_tls_is_verified(orthanc: Orthanc, tmp_path: Path) -> None:
    """Rules: over HTTPS the archive's certificate is verified: with the system's CAs only
    (which never signed it) nothing is stored and the batch is not confirmed; with
    AMANA_ARCHIVE_CA naming its CA the store works, even where REQUESTS_CA_BUNDLE is set
    (it is on this machine; requests would otherwise prefer it). (Orthanc behind a TLS
    terminator: Debian's Orthanc 1.10 resets its own HTTPS connections.)"""
    ca = TestCA(tmp_path / "pki")
    issued = ca.issue("archive", "localhost", server=True)
    proxy = TlsProxy(issued.cert, issued.key, orthanc.port)
    try:
        url = f"dicomweb+https://127.0.0.1:{proxy.port}/dicom-web"
        relpath, data = _instance()
        untrusting = DicomWebStore(url, StoreCredentials(user=USER, password=PASSWORD))
        with pytest.raises(ArchiveUnavailable):
            untrusting.put_many([(relpath, data)])
        assert _store(orthanc).count(_sop(relpath)) == 0
        trusting = DicomWebStore(
            url, StoreCredentials(user=USER, password=PASSWORD, ca_file=ca.cert)
        )
        trusting.put_many([(relpath, data)])
        assert trusting.read(relpath) == data
        assert _store(orthanc).count(_sop(relpath)) == 1
    finally:
        proxy.stop()


def _counts(ctx: WorkerContext) -> dict[str, int]:
    with ctx.sessions() as session:
        rows = session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
        return {str(status): int(n) for status, n in rows}


def test_an_archive_outage_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    """Rules: the catalog row and the job's DONE are committed only after the archive
    confirmed the instance; while the archive is down the jobs go back to RECEIVED (their
    attempt not counted, their spooled original kept), nothing is cataloged; once it is
    back every instance ends in the archive exactly once and in the catalog once, and
    sending the study again changes neither. No original identifier is in what the archive
    holds (read back through WADO-RS and Orthanc's REST API)."""
    server = Orthanc(tmp_path / "orthanc").start()
    try:
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
        upgrade(url)
        engine = make_engine(url)
        ctx = worker_context(make_sessionmaker(engine), tmp_path)
        ctx.store = _store(server)
        first = make_study(tmp_path / "first")
        second = make_study(
            tmp_path / "second", patient_name="Fictive^Omar", patient_id="AMN-TEST-77102"
        )

        ran = process_to_end(ctx, [enqueue(ctx, f) for f in first.files])
        assert set(ran.values()) == {JobResult.ARCHIVED}

        server.stop()
        waiting = [enqueue(ctx, f) for f in second.files]
        results = process_jobs(ctx, waiting)
        assert set(results.values()) == {JobResult.RETRY}
        with ctx.sessions() as session:
            jobs = session.scalars(select(Job).where(Job.id.in_(waiting))).all()
            assert {job.status for job in jobs} == {JobStatus.RECEIVED}
            assert {job.attempts for job in jobs} == {0}
            assert {job.last_error_code for job in jobs} == {"archive_unavailable"}
            assert all((ctx.spool_dir / "incoming" / job.spool_name).exists() for job in jobs)
            assert session.scalar(select(func.count()).select_from(Instance)) == len(first.files)

        server.start()
        again = process_to_end(ctx, waiting)
        assert set(again.values()) == {JobResult.ARCHIVED}
        resent = process_to_end(ctx, [enqueue(ctx, f) for f in [*first.files, *second.files]])
        assert set(resent.values()) == {JobResult.DUPLICATE}

        total = len(first.files) + len(second.files)
        assert _counts(ctx) == {"DONE": 2 * total}
        with ctx.sessions() as session:
            cataloged = session.execute(select(Instance.archive_path, Instance.sha256)).all()
        assert len(cataloged) == total
        held = server.sop_uids()
        assert sorted(held) == sorted(Path(path).name.removesuffix(".dcm") for path, _ in cataloged)
        forbidden = identifying_strings(first) + identifying_strings(second)
        for relpath, sha256 in cataloged:
            data = ctx.archive().read(Path(relpath))
            assert data is not None and hashlib.sha256(data).hexdigest() == sha256
            for value in forbidden:
                assert value not in data, "an original identifier survived in the archive"
        for ident in server.instance_ids():
            stored = server.file(ident)
            for value in forbidden:
                assert value not in stored, "an original identifier survived in the archive"
        engine.dispose()
    finally:
        server.stop()
