"""A generated archive for dataset tests: thousands of made-up patients across the regions,
cataloged as the pipeline catalogs them (archive.catalog.write) with a real Part 10 file per
instance in the archive folder. Pseudonyms and UIDs are random; no identity is involved."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.outcome import InstanceFacts
from archive.catalog.write import NewInstance, record_instances

REGIONS = {  # population weights (profiles/reference/population_by_region.csv, rounded)
    "Tanger-Tetouan-Al Hoceima": 36,
    "Oriental": 23,
    "Fes-Meknes": 42,
    "Rabat-Sale-Kenitra": 46,
    "Beni Mellal-Khenifra": 25,
    "Casablanca-Settat": 69,
    "Marrakech-Safi": 45,
    "Draa-Tafilalet": 16,
    "Souss-Massa": 27,
    "Guelmim-Oued Noun": 4,
    "Laayoune-Sakia El Hamra": 4,
    "Dakhla-Oued Ed-Dahab": 1,
}
MODALITIES = {
    "CT": ("1.2.840.10008.5.1.4.1.1.2", 6),
    "CR": ("1.2.840.10008.5.1.4.1.1.1", 3),
    "MR": ("1.2.840.10008.5.1.4.1.1.4", 2),
}
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
# Made-up equipment (manufacturer, model, weight): one rare model, so that cohorts and
# k-anonymity meet a small machine population as they do in a real archive.
EQUIPMENT = (
    ("ACME MEDICAL", "Scanner 9", 6),
    ("ACME MEDICAL", "Scanner 7", 3),
    ("Nadir Imaging", "NX-300", 4),
    ("Nadir Imaging", "NX-1", 1),
)


def _part10(
    sop_class: str,
    sop_uid: str,
    study_uid: str,
    series_uid: str,
    modality: str,
    study_date: str,
    age: int,
    equipment: tuple[str, str] = ("ACME MEDICAL", "Scanner 9"),
) -> bytes:
    from io import BytesIO

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.PatientIdentityRemoved = "YES"
    # What the archive keeps after the profile: shifted dates, the age, the equipment.
    ds.StudyDate = study_date
    ds.SeriesDate = study_date
    ds.PatientAge = f"{age:03d}Y"
    ds.Manufacturer, ds.ManufacturerModelName = equipment
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def build_archive(
    sessions: sessionmaker[Session],
    archive_dir: Path,
    *,
    patients: int,
    seed: int,
    regions: Sequence[str] | None = None,
) -> int:
    """Catalog `patients` patients (one study each, two instances) and write their files.
    Regions (all, or those named: a denser archive) are drawn half uniformly, half by
    population, so that small regions exist but are not empty. Returns the number of
    instances."""
    rng = random.Random(seed)
    regions = list(regions or REGIONS)
    weights = [REGIONS[r] for r in regions]
    items: list[NewInstance] = []
    for _ in range(patients):
        pseudonym = f"{rng.getrandbits(128):032x}"
        region = rng.choice(regions) if rng.random() < 0.5 else rng.choices(regions, weights)[0]
        modality = rng.choices(list(MODALITIES), [w for _, w in MODALITIES.values()])[0]
        sop_class = MODALITIES[modality][0]
        sex = rng.choice("FM")
        age = rng.randint(20, 89)
        study_date = f"{rng.choice((2023, 2024))}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        maker, model, _ = rng.choices(EQUIPMENT, [w for *_, w in EQUIPMENT])[0]
        study_uid, series_uid = generate_uid(), generate_uid()
        for number in (1, 2):
            sop_uid = generate_uid()
            data = _part10(
                sop_class, sop_uid, study_uid, series_uid, modality, study_date, age, (maker, model)
            )
            relpath = f"{study_uid}/{series_uid}/{sop_uid}.dcm"
            path = archive_dir / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            facts = InstanceFacts(
                patient_pseudonym=pseudonym,
                study_uid=study_uid,
                series_uid=series_uid,
                sop_instance_uid=sop_uid,
                sop_class_uid=sop_class,
                transfer_syntax_uid=ExplicitVRLittleEndian,
                profile_name="ma-national",
                profile_version="v1",
                key_id="k1",
                modality=modality,
                study_date=study_date,
                body_part=rng.choice(("CHEST", "ABDOMEN", "HEAD")),
                instance_number=number,
                patient_sex=sex,
                patient_age=f"{age:03d}Y",
                region=region,
                manufacturer=maker,
                model=model,
            )
            items.append(NewInstance(facts, relpath, hashlib.sha256(data).hexdigest(), len(data)))
    now = datetime.now(UTC)
    for start in range(0, len(items), 500):
        with sessions.begin() as session:
            record_instances(session, items[start : start + 500], now=now)
    return len(items)
