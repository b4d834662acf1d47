"""A catalog with two registered hospitals, an unregistered sender, quarantined instances,
and the people who use the console (made-up, pseudonymous values only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from archive.api import create_app
from archive.catalog.models import Job, QuarantineEntry
from archive.governance.sources import add_source
from archive.stores import StoreCredentials
from archive.stores.dicomweb import DicomWebStore
from tests.catalog.conftest import add_instance, hold
from tests.paths import PROFILES_DIR
from tests.support.orthanc import PASSWORD, USER, Orthanc

# Wednesday noon of a fixed ISO week, so that day, week and month buckets are known.
MONDAY = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@dataclass
class Seeded:
    """What was put in, counted independently of the code under test."""

    studies: dict[str, set[str]] = field(default_factory=dict)  # source label -> study UIDs
    instances: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> reason -> n
    entries: list[int] = field(default_factory=list)


def _attribute(
    sessions: sessionmaker[Session], job_id: int, source_id: int | None, when: datetime
) -> None:
    with sessions.begin() as session:
        job = session.get_one(Job, job_id)
        job.source_id = source_id
        job.received_at = when


def seed(sessions: sessionmaker[Session], quarantine_dir: Path) -> Seeded:
    with sessions.begin() as session:
        rabat = add_source(session, ae_title="CHU_RABAT", address="10.1.0.0/16", site="CHU Rabat")
        fes = add_source(session, ae_title="CHU_FES", address="10.2.0.0/16", site="CHU Fes")
        rabat_id, fes_id = rabat.id, fes.id
    out = Seeded()
    # study uid, source id, label, instances, days after Monday for each instance
    plan = [
        ("2.25.101", rabat_id, "CHU_RABAT (CHU Rabat)", "v1", [0, 0, 1]),  # one study, two days
        ("2.25.102", rabat_id, "CHU_RABAT (CHU Rabat)", "v2", [2]),
        ("2.25.201", fes_id, "CHU_FES (CHU Fes)", "v1", [1, 1]),
        ("2.25.301", None, "(unregistered) PACS1", "v1", [3]),
    ]
    for study, source_id, label, version, days in plan:
        for n, day in enumerate(days):
            when = MONDAY + timedelta(days=day)
            job = add_instance(
                sessions,
                study=study,
                series=f"{study}.1",
                sop=f"{study}.1.{n}",
                version=version,
                when=when,
            )
            _attribute(sessions, job, source_id, when)
            out.studies.setdefault(label, set()).add(study)
            out.instances[label] = out.instances.get(label, 0) + 1
    for name, source_id, label, reason in [
        ("q-rabat-1", rabat_id, "CHU_RABAT (CHU Rabat)", "residual_phi"),
        ("q-rabat-2", rabat_id, "CHU_RABAT (CHU Rabat)", "burned_in_text"),
        ("q-fes-1", fes_id, "CHU_FES (CHU Fes)", "residual_phi"),
    ]:
        entry_id = hold(sessions, quarantine_dir, name)
        with sessions.begin() as session:
            entry = session.get_one(QuarantineEntry, entry_id)
            entry.reason = reason
            job_id = entry.job_id
        _attribute(sessions, job_id, source_id, MONDAY + timedelta(days=1))
        by_reason = out.quarantined.setdefault(label, {})
        by_reason[reason] = by_reason.get(reason, 0) + 1
        out.entries.append(entry_id)
    return out


# A made-up identity drawn in the pixels (the header names someone else).
DRAWN_NAME = ("Ouazzani", "Zineb")


def burned_in_bytes() -> bytes:
    """An ultrasound image with a burned-in made-up name and ID (the header names
    another made-up person)."""
    from pydicom.filebase import DicomBytesIO

    from tests.pixels import imaging

    image, _ = imaging.draw(
        True,
        seed=5,
        texts=[
            imaging.Text(10, 8, " ".join(DRAWN_NAME), 18, (255, 255, 255)),
            imaging.Text(10, 34, "ID 5520417", 16, (255, 255, 255)),
        ],
    )
    buffer = DicomBytesIO()
    imaging.dataset([image]).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def burned_in_original(
    quarantine_dir: Path, sessions: sessionmaker[Session], entry_id: int
) -> bytes:
    """Replace entry `entry_id`'s placeholder original with `burned_in_bytes()` (what a
    steward previews before releasing)."""
    data = burned_in_bytes()
    with sessions() as session:
        stored = session.get_one(QuarantineEntry, entry_id).stored_name
    (quarantine_dir / stored).write_bytes(data)
    return data


def archived_instance(relpath: str, bright_right: bool) -> bytes:
    """The archived instance `relpath` names (`<study>/<series>/<sop>.dcm`, its UIDs, as
    a DICOMweb archive files it by them): one half black, the other white."""
    import numpy as np
    from pydicom.filebase import DicomBytesIO

    from tests.pixels import imaging

    pixels = np.zeros((256, 320), np.uint8)
    if bright_right:
        pixels[:, 160:] = 255
    else:
        pixels[:, :160] = 255
    ds = imaging.dataset([pixels], modality="CT", sop_class="1.2.840.10008.5.1.4.1.1.2")
    ds.PatientName, ds.PatientID = "PSEUDO^ANON", "PSEUDO-0001"
    study, series, name = Path(relpath).parts
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.SOPInstanceUID = name.removesuffix(".dcm")
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_archived(archive_dir: Path, relpath: str, bright_right: bool) -> None:
    """An archived CT-like image: one half black, the other white."""
    import numpy as np
    from pydicom.filebase import DicomBytesIO

    from tests.pixels import imaging

    pixels = np.zeros((256, 320), np.uint8)
    if bright_right:
        pixels[:, 160:] = 255
    else:
        pixels[:, :160] = 255
    ds = imaging.dataset([pixels], modality="CT", sop_class="1.2.840.10008.5.1.4.1.1.2")
    buffer = DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    path = archive_dir / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())


def app_on_orthanc(
    sessions: sessionmaker[Session], tmp_path: Path, orthanc: Orthanc
) -> tuple[DicomWebStore, FastAPI]:
    """The API and console with a real Orthanc as their DICOMweb archive and no archive
    folder, and that archive's store."""
    store = DicomWebStore(orthanc.archive_url, StoreCredentials(user=USER, password=PASSWORD))
    app = create_app(
        sessions,
        profiles_dir=PROFILES_DIR,
        quarantine_dir=tmp_path / "quarantine",
        spool_dir=tmp_path / "spool",
        archive_store=store,
    )
    return store, app
