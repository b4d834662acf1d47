"""Bad input never crashes a worker and never leaks: it is quarantined or cleanly archived.

Run against both archive stores: the folder, and a real Orthanc over DICOMweb, whose
archived instances are read back through WADO-RS for the leak checks."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_charset_files
from sqlalchemy import select

from amana.keys import ensure_key
from anonymizer.engine import Deidentifier, load_profile
from archive.catalog.db import make_engine, make_sessionmaker
from archive.catalog.migrate import upgrade
from archive.catalog.models import Instance, Job, JobStatus, QuarantineEntry
from archive.stores import StoreCredentials
from archive.stores.dicomweb import DicomWebStore
from archive.work.jobs import create_job
from archive.work.pipeline import WorkerContext
from ingest.spool import Spool
from tests.paths import REPO_ROOT
from tests.robustness.corpus import BAD_INPUTS, CHARSET_FILES
from tests.support.orthanc import PASSWORD, USER, Orthanc
from tests.support.pipeline_helpers import process_to_end

INJECTED = [b"Malveillant", b"BAD-INPUT-001"]


@pytest.fixture(scope="module", params=["file", "dicomweb"])
def ctx(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerContext]:
    root = tmp_path_factory.mktemp("bad")
    url = f"sqlite:///{root / 'catalog.db'}"
    upgrade(url)
    engine = make_engine(url)
    store = None
    if request.param == "dicomweb":
        orthanc = Orthanc(root / "orthanc").start()
        request.addfinalizer(orthanc.stop)
        store = DicomWebStore(orthanc.archive_url, StoreCredentials(user=USER, password=PASSWORD))
    yield WorkerContext(
        sessions=make_sessionmaker(engine),
        deidentifier=Deidentifier(
            load_profile("ma-national", REPO_ROOT / "profiles"), ensure_key(root / "key")
        ),
        spool_dir=root / "spool",
        archive_dir=root / "archive",
        quarantine_dir=root / "quarantine",
        stale_after=timedelta(seconds=300),
        store=store,
    )
    engine.dispose()


def _archived(ctx: WorkerContext, instance: Instance) -> bytes:
    data = ctx.archive().read(Path(instance.archive_path))
    assert data is not None, "the catalog names an instance the archive does not hold"
    return data


def _run(ctx: WorkerContext, data: bytes, tmp_path: Path) -> tuple[Job, QuarantineEntry | None]:
    source = tmp_path / "input.bin"
    source.write_bytes(data)
    name, size = Spool(ctx.spool_dir, 0).copy_in(source)
    with ctx.sessions.begin() as session:
        job_id = create_job(
            session, spool_name=name, size_bytes=size, calling_ae=None, source_kind="test"
        )
    process_to_end(ctx, [job_id])
    with ctx.sessions() as session:
        job = session.get_one(Job, job_id)
        entry = session.scalars(
            select(QuarantineEntry).where(QuarantineEntry.job_id == job_id)
        ).first()
        return job, entry


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_bad_input_ends_quarantined_or_clean(kind: str, ctx: WorkerContext, tmp_path: Path) -> None:
    """Rule: every bad input (empty, random, truncated, preamble only, impossible length,
    deflate bomb, thousands-deep nesting, wrong VRs) ends QUARANTINED with a reason and a
    PHI-free message, or DONE with no injected value in the archived bytes; the worker
    process survives to run the next job."""
    job, entry = _run(ctx, BAD_INPUTS[kind](), tmp_path)
    assert job.status in (JobStatus.QUARANTINED, JobStatus.DONE)
    if job.status is JobStatus.QUARANTINED:
        assert entry is not None and entry.reason and entry.message
        for value in INJECTED:
            assert value.decode() not in entry.message
        assert (ctx.quarantine_dir / entry.stored_name).exists()
    else:
        with ctx.sessions() as session:
            instance = session.get_one(Instance, job.instance_id)
        data = _archived(ctx, instance)
        for value in INJECTED:
            assert value not in data


@pytest.mark.ocr
@pytest.mark.parametrize("name", CHARSET_FILES)
def test_every_character_set_is_deidentified(name: str, ctx: WorkerContext, tmp_path: Path) -> None:
    """Rule: names in every DICOM character set (Arabic, French, Greek, Hebrew, Japanese,
    Korean, Chinese, Russian...) are removed: no component of the original Patient's Name
    survives in the archived file, decoded or raw."""
    [path] = [p for p in get_charset_files(name) if p.endswith(name)]
    original = pydicom.dcmread(path)
    raw = Path(path).read_bytes()
    job, entry = _run(ctx, raw, tmp_path)
    assert job.status is JobStatus.DONE, entry.reason if entry else None
    with ctx.sessions() as session:
        instance = session.get_one(Instance, job.instance_id)
    archived = _archived(ctx, instance)
    out = pydicom.dcmread(io.BytesIO(archived))
    text = " ".join(
        str(e.value) for e in out.iterall() if e.VR in ("PN", "LO", "SH", "LT", "ST", "UT")
    )
    name_value = original.get("PatientName")
    components = [c for c in str(name_value).replace("=", "^").split("^") if len(c) >= 2]
    for component in components:
        assert component not in text
    raw_pn = original["PatientName"].value
    raw_bytes = original.get_item("PatientName").value  # type: ignore[union-attr]
    assert raw_pn is not None
    if isinstance(raw_bytes, bytes) and len(raw_bytes) >= 4:
        assert raw_bytes not in archived
