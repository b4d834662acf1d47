"""A synthetic CT corpus with made-up identities: 512x512 16-bit, grouped in studies."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def make_ct(
    path: Path,
    *,
    study: int,
    series_uid: str,
    study_uid: str,
    index: int,
    frame_uid: str,
    rng: np.random.Generator,
) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.PatientName = f"Synthetique^Patient{study:04d}"
    ds.PatientID = f"SYN-{study:06d}"
    ds.IssuerOfPatientID = "CHU-FICTIF"
    ds.PatientBirthDate = f"19{50 + study % 40:02d}0{1 + study % 9}15"
    ds.PatientSex = "MF"[study % 2]
    ds.PatientAge = f"{40 + study % 40:03d}Y"
    ds.AccessionNumber = f"ACC{study:08d}"
    ds.StudyDate = "20240115"
    ds.StudyTime = "101500"
    ds.SeriesDate = "20240115"
    ds.ContentDate = "20240115"
    ds.StudyDescription = f"CT THORAX Synthetique^Patient{study:04d}"
    ds.SeriesDescription = "AXIAL 1mm"
    ds.ReferringPhysicianName = "Medecin^Fictif"
    ds.InstitutionName = "CHU Fictif"
    ds.StationName = "CTSTATION01"
    ds.Manufacturer = "ACME"
    ds.ManufacturerModelName = "Fictional CT 64"
    ds.DeviceSerialNumber = "SN-000123"
    ds.Modality = "CT"
    ds.BodyPartExamined = "CHEST"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SliceThickness = "1.0"
    ds.KVP = "120"
    ds.ImagePositionPatient = [0, 0, -index]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 512
    ds.Columns = 512
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = rng.integers(0, 4096, size=(512, 512), dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def make_corpus(
    out: Path, *, instances: int = 2000, studies: int = 20, seed: int = 7
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    per_study = max(1, instances // studies)
    files: list[Path] = []
    for study in range(studies):
        study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
        for index in range(per_study):
            if len(files) >= instances:
                break
            path = out / f"s{study:03d}_i{index:04d}.dcm"
            make_ct(
                path,
                study=study,
                series_uid=series_uid,
                study_uid=study_uid,
                index=index,
                frame_uid=frame_uid,
                rng=rng,
            )
            files.append(path)
    return files


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--studies", type=int, default=20)
    args = parser.parse_args()
    print(len(make_corpus(args.out, instances=args.instances, studies=args.studies)))
