"""Synthetic instances with made-up identities placed where the peers leak."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROOT = "1.2.826.0.1.3680043.10.1234."  # a made-up root for test UIDs


@dataclass
class Identity:
    """A made-up patient and the people and places around one study."""

    family: str = "Testpatient"
    given: str = "Fatima"
    patient_id: str = "IPP20240077"
    issuer: str = "HOPITAL-FICTIF-CASA"
    accession: str = "ACC55501234"
    birth_date: str = "19750314"
    physician: str = "Bennani-Fictif^Youssef"
    operator: str = "Operateur^Karima"
    institution: str = "CHU Ibn Rochd"
    station: str = "CTSALLE3FICTIVE"
    serial: str = "SN884422XQ"
    address: str = "12 rue des Essais, Casablanca"
    phone: str = "0612345678"
    extra_names: list[str] = field(default_factory=list)

    @property
    def patient_name(self) -> str:
        return f"{self.family}^{self.given}"

    def values(self) -> list[str]:
        """Every value that must not survive (name components checked separately)."""
        return [
            self.family, self.given, self.patient_id, self.accession, self.birth_date,
            "Bennani-Fictif", "Youssef", "Operateur", "Karima", self.station, self.serial,
            "12 rue des Essais", self.phone, *self.extra_names,
        ]


def uid() -> str:
    return generate_uid(prefix=ROOT)


def ct_instance(
    who: Identity,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    study_date: str = "20240315",
    rows: int = 16,
    description: str | None = None,
) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid or uid()
    ds.StudyInstanceUID = study_uid or uid()
    ds.SeriesInstanceUID = series_uid or uid()
    ds.FrameOfReferenceUID = uid()
    ds.StudyDate = study_date
    ds.SeriesDate = study_date
    ds.ContentDate = study_date
    ds.StudyTime = "101500"
    ds.AccessionNumber = who.accession
    ds.Modality = "CT"
    ds.Manufacturer = "FICTIVE MEDICAL"
    ds.ManufacturerModelName = "ScanModel 64"
    ds.SoftwareVersions = "VX12"
    ds.InstitutionName = who.institution
    ds.InstitutionAddress = who.address
    ds.StationName = who.station
    ds.DeviceSerialNumber = who.serial
    ds.ReferringPhysicianName = who.physician
    ds.OperatorsName = who.operator
    ds.StudyDescription = description or f"CT thorax {who.family} {who.given}"
    ds.SeriesDescription = "Thorax 1.25mm"
    ds.PatientName = who.patient_name
    ds.PatientID = who.patient_id
    ds.IssuerOfPatientID = who.issuer
    ds.PatientBirthDate = who.birth_date
    ds.PatientSex = "F"
    ds.PatientAge = "049Y"
    ds.PatientWeight = "61"
    ds.PatientAddress = who.address
    ds.PatientTelephoneNumbers = who.phone
    ds.StudyID = "7781"
    ds.SeriesNumber = 2
    ds.InstanceNumber = 1
    ds.KVP = "120"
    ds.SliceThickness = "1.25"
    ds.ConvolutionKernel = "B30f"
    ds.ImageComments = f"Patient {who.family}, IPP {who.patient_id}, né le 14/03/1975"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = rows
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(256)) * (rows * rows * 2 // 256) + b"\x00" * (
        rows * rows * 2 % 256
    )
    return ds


def to_bytes(ds: Dataset, transfer_syntax: str = ExplicitVRLittleEndian) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.SourceApplicationEntityTitle = "PACS_FICTIF"
    ds.file_meta = meta
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def item(**values: object) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def reference_sequence(sop_class: str, sop_uid: str) -> Sequence:
    return Sequence([item(ReferencedSOPClassUID=sop_class, ReferencedSOPInstanceUID=sop_uid)])
