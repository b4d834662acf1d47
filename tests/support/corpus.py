"""The synthetic corpus of the benchmarks and the chaos run, made-up identities only.

- CT: 512x512 16-bit (12 stored) instances with the header a scanner writes (about 120
  elements, sequences, two private blocks), grouped in studies; their pixels are a
  body-like slice (air, soft tissue with a scanner's mild noise, a bone ring:
  tests/support/ct_series.py), not random values: uniform noise over the whole 12-bit
  range is no CT, and the series screen rightly reads "text" in it (OCR finds words in
  such noise), which turned every sampled series of the chaos run into a full
  examination of each slice;
- US (optional share): 640x480 RGB ultrasound frames with burned-in made-up text (the
  study's patient name, ID and birth date, the institution, an Arabic name, a faint
  first name, device annotations), the text a de-identifier must find by OCR.

    .venv/bin/python -m benchmarks.corpus OUT [--instances 2000] [--studies 20] [--us-share 0.1]

Every name, ID and date here is invented.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

from tests.support.ct_series import slice_pixels
from tests.support.identities import INSTITUTION, identity
from tests.support.ultrasound import Text, burned_in_texts, draw

US_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"


def _item(**values: object) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def _patient(ds: Dataset, study: int) -> None:
    who = identity(study)
    ds.PatientName = who.patient_name
    ds.PatientID = who.patient_id
    ds.IssuerOfPatientID = "CHU-FICTIF"
    ds.PatientBirthDate = who.birth_date
    ds.PatientSex = "MF"[study % 2]
    ds.PatientAge = f"{40 + study % 40:03d}Y"
    ds.PatientWeight = "70"
    ds.PatientAddress = f"{study} avenue Fictive, Rabat"


def _save(ds: Dataset, path: Path, sop_class: str, source_ae: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = source_ae
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)


def make_ct(path: Path, study: int, index: int, uids: tuple[str, str, str], pixels: bytes) -> None:
    """One CT instance with the header a scanner writes (about 120 elements)."""
    study_uid, series_uid, frame_uid = uids
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceCreationDate = "20240115"
    ds.InstanceCreationTime = "101512"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20240115"
    ds.StudyTime, ds.SeriesTime, ds.AcquisitionTime, ds.ContentTime = (
        "101500",
        "101505",
        "101510",
        "101512",
    )
    ds.AccessionNumber = f"ACC{study:08d}"
    ds.Modality = "CT"
    ds.Manufacturer = "ACME MEDICAL"
    ds.InstitutionName = INSTITUTION
    ds.InstitutionAddress = f"{study} rue des Essais, Casablanca"
    ds.ReferringPhysicianName = "Medecin^Fictif"
    ds.StationName = "CTSTATION01"
    ds.StudyDescription = f"CT THORAX Synthetique {study:04d}"
    ds.ProcedureCodeSequence = Sequence(
        [_item(CodeValue="CTCHEST", CodingSchemeDesignator="L", CodeMeaning="CT Thorax")]
    )
    ds.SeriesDescription = "AXIAL 1mm"
    ds.InstitutionalDepartmentName = "Radiologie"
    ds.PerformingPhysicianName = "Radiologue^Fictive"
    ds.OperatorsName = "Manip^Fictif"
    ds.ManufacturerModelName = "Fictional CT 64"
    ds.ReferencedStudySequence = Sequence(
        [_item(ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.1", ReferencedSOPInstanceUID=study_uid)]
    )
    _patient(ds, study)
    ds.ContrastBolusAgent = "IOMERON 350"
    ds.BodyPartExamined = "CHEST"
    ds.ScanOptions = "HELICAL MODE"
    ds.SliceThickness = "1.0"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500"
    ds.DeviceSerialNumber = "SN-000123"
    ds.SoftwareVersions = "V1.2.3"
    ds.ProtocolName = "THORAX STANDARD"
    ds.ReconstructionDiameter = "350"
    ds.DistanceSourceToDetector = "1040"
    ds.DistanceSourceToPatient = "570"
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "150"
    ds.RotationDirection = "CW"
    ds.ExposureTime = "500"
    ds.XRayTubeCurrent = "200"
    ds.Exposure = "100"
    ds.FilterType = "BODY"
    ds.GeneratorPower = "24"
    ds.FocalSpots = "1.2"
    ds.ConvolutionKernel = "B30f"
    ds.PatientPosition = "HFS"
    ds.RevolutionTime = 0.5
    ds.SingleCollimationWidth = 0.6
    ds.TotalCollimationWidth = 38.4
    ds.TableSpeed = 46.0
    ds.TableFeedPerRotation = 23.0
    ds.SpiralPitchFactor = 0.6
    ds.CTDIvol = 8.5
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = f"{study}"
    ds.SeriesNumber = 2
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [-175.0, -175.0, -float(index)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = str(-float(index))
    ds.ImageComments = f"Synthetique Patient{study:04d} suivi"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 512
    ds.PixelSpacing = [0.68, 0.68]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.RequestAttributesSequence = Sequence(
        [
            _item(
                RequestedProcedureID=f"RP{study:06d}",
                ScheduledProcedureStepID=f"SPS{study:06d}",
                ScheduledProcedureStepDescription="CT THORAX",
            )
        ]
    )
    ds.PerformedProcedureStepStartDate = "20240115"
    ds.PerformedProcedureStepID = f"PPS{study:06d}"
    block = ds.private_block(0x0019, "ACME CT PRIVATE 1.0", create=True)
    for element in range(0x10, 0x30):
        block.add_new(element, "DS", str(element * 1.5))
    block.add_new(0x40, "LO", f"Synthetique^Patient{study:04d}")
    csa = ds.private_block(0x0029, "ACME CSA HEADER", create=True)
    csa.add_new(0x10, "OB", bytes(2048))
    ds.PixelData = pixels
    _save(ds, path, CTImageStorage, "CT_FICTIF")


def ct_pixels(index: int) -> bytes:
    """The Pixel Data of the corpus's `index`-th CT slice of a series (no text in it)."""
    return slice_pixels(512, index, text=False).tobytes()


# --- ultrasound with burned-in text --------------------------------------------------


def study_texts(study: int) -> list[Text]:
    """What the study's ultrasound machine burns in: the identity and device annotations."""
    return burned_in_texts(identity(study), device_annotations=True)


def us_frame(study: int, seed: int) -> np.ndarray:
    """A 640x480 RGB ultrasound frame with the study's made-up identity burned in."""
    image, _ = draw(True, seed, study_texts(study))
    return image


def us_dataset(
    frames: list[np.ndarray],
    study: int,
    *,
    index: int = 0,
    uids: tuple[str, str] | None = None,
    modality: str = "US",
    sop_class: str = US_IMAGE_STORAGE,
) -> Dataset:
    """An instance holding `frames` (RGB or grey, uint8) for the study's made-up patient,
    Burned In Annotation YES, file meta included."""
    study_uid, series_uid = uids or (generate_uid(), generate_uid())
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240116"
    ds.StudyTime, ds.SeriesTime, ds.ContentTime = "093000", "093005", "093010"
    ds.AccessionNumber = f"ACC{study:08d}"
    ds.Modality = modality
    ds.Manufacturer = "ACME ULTRASOUND"
    ds.ManufacturerModelName = "Fictional US 5"
    ds.InstitutionName = INSTITUTION
    ds.ReferringPhysicianName = "Medecin^Fictif"
    ds.StationName = "USSTATION02"
    ds.StudyDescription = "US ABDOMEN"
    ds.SeriesDescription = "ABDOMEN"
    ds.OperatorsName = "Echographiste^Fictive"
    _patient(ds, study)
    ds.DeviceSerialNumber = "SN-000456"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = f"{study}"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    ds.BurnedInAnnotation = "YES"
    stacked = np.stack(frames) if len(frames) > 1 else frames[0]
    colour = frames[0].ndim == 3
    ds.set_pixel_data(stacked, "RGB" if colour else "MONOCHROME2", 8, generate_instance_uid=False)
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "US_FICTIF"
    ds.file_meta = meta
    return ds


def make_us(path: Path, study: int, index: int, uids: tuple[str, str], seed: int) -> None:
    """One single-frame 640x480 RGB US instance with the study's identity burned in."""
    ds = us_dataset([us_frame(study, seed)], study, index=index, uids=uids)
    ds.save_as(path, enforce_file_format=True)


def study_of(ds: Dataset) -> int:
    """The study number a corpus instance was made for (from its made-up Patient ID)."""
    return int(str(ds.PatientID).rsplit("-", 1)[1])


# --- the corpus ----------------------------------------------------------------------


@dataclass
class Corpus:
    folder: Path
    files: list[Path]  # in sending order: studies one after another
    ct: list[Path]
    us: list[Path]
    studies: int
    us_studies: int

    @property
    def megabytes(self) -> float:
        return sum(f.stat().st_size for f in self.files) / 1e6

    @property
    def ct_folder(self) -> Path:
        return self.folder / "ct"

    @property
    def us_folder(self) -> Path:
        return self.folder / "us"

    def describe(self) -> str:
        text = f"{len(self.ct)} CT instances in {self.studies - self.us_studies} studies"
        if self.us:
            text += (
                f" + {len(self.us)} US frames with burned-in text in {self.us_studies} "
                f"{'study' if self.us_studies == 1 else 'studies'}"
            )
        return f"{text}, {self.megabytes:.0f} MB"


def _split(total: int, parts: int) -> list[int]:
    """`total` in `parts` near-equal counts (the first ones get the remainder)."""
    if parts <= 0:
        return []
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def build_corpus(
    out: Path,
    *,
    instances: int = 2000,
    studies: int = 20,
    us_share: float = 0.0,
    seed: int = 7,
) -> Corpus:
    """`instances` in total, `round(instances * us_share)` of them US frames; US
    instances form their own studies (about `us_share` of the studies), interleaved with
    the CT studies in sending order."""
    if instances < 1:
        raise ValueError("instances must be >= 1")
    if not 0.0 <= us_share <= 1.0:
        raise ValueError("us_share is a fraction between 0 and 1")
    us_count = round(instances * us_share)
    if us_share > 0 and us_count == 0:
        us_count = 1
    ct_count = instances - us_count
    studies = max(1, min(studies, instances))
    us_studies = 0
    if us_count:
        us_studies = max(1, round(studies * us_share))
        us_studies = min(us_studies, us_count, studies - (1 if ct_count else 0))
        us_studies = max(1, us_studies)
    ct_studies = min(max(studies - us_studies, 1 if ct_count else 0), ct_count)
    # Sending order: spread the US studies evenly among the CT studies.
    order = [("ct", i, n) for i, n in enumerate(_split(ct_count, ct_studies))]
    for j, n in enumerate(_split(us_count, us_studies)):
        order.append(("us", j, n))
    order.sort(key=lambda s: ((s[1] + 0.5) / (ct_studies if s[0] == "ct" else us_studies), s[0]))
    (out / "ct").mkdir(parents=True, exist_ok=True)
    (out / "us").mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    ct: list[Path] = []
    us: list[Path] = []
    for study, (kind, _, count) in enumerate(order):
        if kind == "ct":
            uids = (generate_uid(), generate_uid(), generate_uid())
            for index in range(count):
                path = out / "ct" / f"s{study:03d}_i{index:04d}.dcm"
                make_ct(path, study, index, uids, ct_pixels(index))
                ct.append(path)
                files.append(path)
        else:
            us_uids = (generate_uid(), generate_uid())
            for index in range(count):
                path = out / "us" / f"s{study:03d}_i{index:04d}.dcm"
                make_us(path, study, index, us_uids, seed=seed * 100_003 + study * 1009 + index)
                us.append(path)
                files.append(path)
    return Corpus(out, files, ct, us, len(order), us_studies)


def make_corpus(
    out: Path, *, instances: int = 2000, studies: int = 20, seed: int = 7, us_share: float = 0.0
) -> list[Path]:
    """The corpus's files in sending order (see `build_corpus`)."""
    return build_corpus(
        out, instances=instances, studies=studies, us_share=us_share, seed=seed
    ).files
