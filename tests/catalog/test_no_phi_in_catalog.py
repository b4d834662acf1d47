"""End to end through the real engine: no injected identifier reaches any catalog column."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.engine import Deidentifier, key_from_bytes, load_profile
from archive import audit
from archive.api import create_app
from archive.catalog.models import Job, JobStatus
from archive.work.jobs import create_job
from archive.work.pipeline import WorkerContext
from ingest.spool import Spool
from tests.catalog.conftest import mint
from tests.paths import PROFILES_DIR, REPO_ROOT
from tests.support.pipeline_helpers import process_to_end

pytestmark = pytest.mark.ocr

# Made-up identity, distinctive enough that any hit in the catalog is a leak.
PHI = {
    "PatientName": "Zerhouniq^Aminata^Lalla",
    "PatientID": "MRN7734XQ",
    "IssuerOfPatientID": "HOPITAL-ISSUER-QZ",
    "OtherPatientNames": "Benkiranq^Aminata",
    "PatientBirthName": "Elfassiq^Aminata",
    "PatientMotherBirthName": "Bouazzaq^Khadija",
    "PatientAddress": "12 Rue Imaginaireq Rabat",
    "PatientTelephoneNumbers": "+212600112299",
    "PatientBirthDate": "19580417",
    "AccessionNumber": "ACC99812ZZ",
    "StudyID": "STUDYQ5521",
    "ReferringPhysicianName": "Bennaniq^Youssef",
    "PerformingPhysicianName": "Alaouiq^Samir",
    "OperatorsName": "Taziq^Karim",
    "InstitutionName": "Clinique Atlasq Fictive",
    "InstitutionAddress": "Boulevard Inventeq 44 Casablanca",
    "StationName": "STATIONZX9Q",
    "DeviceSerialNumber": "SNQ77AB12",
    "PatientComments": "Patiente Zerhouniq contact +212600112299",
    "ImageComments": "Zerhouniq MRN7734XQ left side",
    "RequestingPhysician": "Chraibiq^Nadia",
}
NAME_PARTS = [
    "Zerhouniq",
    "Aminata",
    "Benkiranq",
    "Elfassiq",
    "Bouazzaq",
    "Bennaniq",
    "Alaouiq",
    "Taziq",
    "Chraibiq",
    "Imaginaireq",
    "Atlasq",
    "Inventeq",
]
STUDY_DATE = "20240312"


def _inject(ds: Dataset, study_uid: str, series_uid: str) -> set[str]:
    """PHI in every place it can hide: header, descriptions, sequences, private tags, UIDs."""
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = STUDY_DATE
    ds.StudyDescription = f"Thorax control Zerhouniq {PHI['PatientID']}"
    ds.SeriesDescription = "Axial ACC99812ZZ Bennaniq"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.FrameOfReferenceUID = generate_uid()
    request = Dataset()
    request.AccessionNumber = PHI["AccessionNumber"]
    request.RequestedProcedureID = "RPQ4471"
    request.ScheduledProcedureStepID = "SPSQ8812"
    request.RequestedProcedureDescription = "Scanner Zerhouniq"
    ds.RequestAttributesSequence = Sequence([request])
    referenced = Dataset()
    referenced.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    referenced.ReferencedSOPInstanceUID = generate_uid()
    ds.ReferencedStudySequence = Sequence([referenced])
    block = ds.private_block(0x0029, "ACME PRIVATE QZ", create=True)
    block.add_new(0x10, "LO", PHI["PatientName"])
    block.add_new(0x11, "LO", PHI["PatientID"])
    return {
        str(ds.SOPInstanceUID),
        str(ds.FrameOfReferenceUID),
        str(referenced.ReferencedSOPInstanceUID),
        study_uid,
        series_uid,
    }


def _corpus(folder: Path) -> tuple[list[Path], set[str]]:
    folder.mkdir(parents=True)
    study_uid, uids = generate_uid(), set()
    files = []
    for index, source in enumerate(["CT_small.dcm", "CT_small.dcm", "MR_small.dcm"]):
        ds = pydicom.dcmread(get_testdata_file(source))
        uids |= _inject(ds, study_uid, generate_uid())
        ds.InstanceNumber = index + 1
        path = folder / f"i{index}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    # Unreadable input carrying identity bytes: it must be quarantined with a clean message.
    broken = folder / "broken.dcm"
    broken.write_bytes(b"\0" * 128 + b"DICM" + PHI["PatientName"].encode() * 4)
    files.append(broken)
    # A dataset without a SOP Instance UID: quarantined for a missing attribute.
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    _inject(ds, study_uid, generate_uid())
    del ds.SOPInstanceUID
    missing = folder / "missing.dcm"
    ds.save_as(missing, enforce_file_format=False)
    files.append(missing)
    return files, uids


def _dump(sessions: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    """Every value of every column of every table, as text."""
    cells: list[tuple[str, str, str]] = []
    with sessions() as session:
        bind = session.get_bind()
        for table in inspect(bind).get_table_names():
            columns = [c["name"] for c in inspect(bind).get_columns(table)]
            for row in session.execute(text(f'SELECT * FROM "{table}"')):
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    shown = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                    cells.append((table, column, shown))
    return cells


def test_no_injected_identifier_anywhere_in_the_database(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: no PHI in the catalog — after ingesting instances with made-up identifiers in
    every place they can hide (and using the API on them), a dump of every column of every
    table holds none of the injected values, original UIDs or the real study date."""
    files, original_uids = _corpus(tmp_path / "in")
    ctx = WorkerContext(
        sessions=sessions,
        deidentifier=Deidentifier(
            load_profile("ma-national", REPO_ROOT / "profiles"), key_from_bytes(os.urandom(32))
        ),
        spool_dir=tmp_path / "spool",
        archive_dir=tmp_path / "archive",
        quarantine_dir=tmp_path / "quarantine",
        stale_after=timedelta(seconds=300),
    )
    spool = Spool(ctx.spool_dir, 0)
    for path in files:
        name, size = spool.copy_in(path)
        with sessions.begin() as session:
            job_id = create_job(
                session, spool_name=name, size_bytes=size, calling_ae="CHU_TEST", source_kind="t"
            )
        result = process_to_end(ctx, [job_id])[job_id]
        with sessions.begin() as session:
            job = session.get_one(Job, job_id)
            if job.status is JobStatus.QUARANTINED:
                audit.append(session, audit.job_quarantined(job_id, job.last_error_code or ""))
        assert result.value in {"archived", "quarantined", "duplicate"}
    with sessions() as session:
        statuses = session.scalars(select(Job.status)).all()
    assert JobStatus.DONE in statuses, "the engine archived nothing: the dump would prove little"
    assert JobStatus.QUARANTINED in statuses

    # Readers and stewards at work, including searches typed with the patient's identity.
    auditor = {"Authorization": f"Bearer {mint(sessions, 'auditor')}"}
    with TestClient(create_app(sessions, profiles_dir=PROFILES_DIR)) as client:
        study_uid = client.get("/studies", headers=auditor).json()["items"][0]["study_uid"]
        client.get(f"/studies/{study_uid}", headers=auditor)
        client.get("/studies/" + PHI["PatientID"], headers=auditor)
        client.get("/studies", headers=auditor, params={"region": PHI["InstitutionName"]})
        client.get("/studies", headers=auditor, params={"modality": "Zerhouniq"})
        client.get("/audit", headers=auditor, params={"actor": PHI["PatientName"]})
        client.get("/audit", headers=auditor, params={"object_id": PHI["AccessionNumber"]})
        client.get("/quarantine?format=csv", headers=auditor)
        client.get("/statistics", headers=auditor)

    forbidden = set(PHI.values()) | set(NAME_PARTS) | original_uids | {STUDY_DATE}
    forbidden |= {"RPQ4471", "SPSQ8812", "ACME PRIVATE QZ"}
    forbidden |= {part for value in PHI.values() for part in value.split("^") if len(part) > 5}
    cells = _dump(sessions)
    assert len(cells) > 100
    leaks = sorted(
        f"{table}.{column} holds {needle!r}: {value[:120]!r}"
        for table, column, value in cells
        for needle in forbidden
        if needle.casefold() in value.casefold()
    )
    assert not leaks, "identifiers in the catalog:\n" + "\n".join(leaks)
