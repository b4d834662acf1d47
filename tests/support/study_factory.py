"""Studies with made-up identities, built from the real files pydicom ships."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import UID_dictionary, generate_uid

# (pydicom test file, series key) — CT and MR uncompressed, MR RLE-compressed.
DEFAULT_LAYOUT = [
    ("CT_small.dcm", "ct"),
    ("CT_small.dcm", "ct"),
    ("CT_small.dcm", "ct"),
    ("MR_small.dcm", "mr"),
    ("MR_small.dcm", "mr"),
    ("MR_small_RLE.dcm", "mr_rle"),
]


@dataclass
class FakeStudy:
    files: list[Path]
    patient_name: str
    patient_id: str
    study_uid: str
    series_uids: dict[str, str]
    original_uids: set[str] = field(default_factory=set)

    @property
    def series_count(self) -> int:
        return len(self.series_uids)


def _walk(ds: Dataset) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                out.extend(_walk(item))
        else:
            out.append((elem.VR, elem.value))
    return out


def instance_uids(ds: Dataset) -> set[str]:
    """Every UID value in the dataset that is not a well-known standard UID."""
    found: set[str] = set()
    for vr, value in _walk(ds):
        if vr != "UI" or not value:
            continue
        values = value if isinstance(value, list | pydicom.multival.MultiValue) else [value]
        for uid in values:
            if str(uid) not in UID_dictionary:
                found.add(str(uid))
    return found


def make_study(
    out_dir: Path,
    *,
    patient_name: str = "Testpatient^Fatima",
    patient_id: str = "AMN-TEST-48213",
    layout: list[tuple[str, str]] | None = None,
) -> FakeStudy:
    out_dir.mkdir(parents=True, exist_ok=True)
    study_uid = generate_uid()
    series_uids: dict[str, str] = {}
    study = FakeStudy([], patient_name, patient_id, study_uid, series_uids)
    for index, (source, series_key) in enumerate(layout or DEFAULT_LAYOUT):
        ds = pydicom.dcmread(get_testdata_file(source))
        series_uid = series_uids.setdefault(series_key, generate_uid())
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = "19610312"
        ds.AccessionNumber = "ACC-TEST-7731"
        ds.ReferringPhysicianName = "Docteur-Fictif^Karim"
        ds.InstitutionName = "CHU Fictif de Test"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = index + 1
        path = out_dir / f"instance_{index:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        study.files.append(path)
        study.original_uids |= instance_uids(ds)
    return study


def identifying_strings(study: FakeStudy) -> list[bytes]:
    """Byte forms of the identity that must not appear anywhere in the archive."""
    parts = [study.patient_name, study.patient_id, "ACC-TEST-7731", "Docteur-Fictif"]
    parts += study.patient_name.split("^")
    parts += sorted(study.original_uids)
    return [p.encode() for p in parts if p]
