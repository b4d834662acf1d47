"""Primary CT series made up here (ORIGINAL\\PRIMARY\\AXIAL, no Burned In Annotation), with
text burned into chosen slices when a test wants it. Identities are invented.

Used by the sampling tests and the sampling benchmark: what a scanner sends, slice by
slice, for a series whose pixels the national profile samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from tests.support.identities import PIXEL_PATIENT
from tests.support.ultrasound import font

# What a device would burn in: the patient's name and ID (invented).
BURNED_TEXT = (PIXEL_PATIENT.display_name, PIXEL_PATIENT.patient_id)
TEXT_VALUE = 4095  # drawn at the top of the 12-bit range, as consoles do
TEXT_BOX = (8, 6, 230, 48)  # (x0, y0, x1, y1) where the text goes


@dataclass(frozen=True)
class CtSeries:
    files: list[Path]  # in the order they are sent
    study_uid: str
    series_uid: str
    instance_numbers: list[int]


def slice_pixels(rows: int, index: int, *, text: bool) -> np.ndarray:
    """A body-like slice: air, an elliptic body with mild soft-tissue noise and a bone ring
    (stronger noise makes the verification's independent reading see words in it: a
    limit of the reading, docs/pixels.md "Known limits", not what these slices test);
    with `text`, two lines of the patient's name and ID in the top-left corner."""
    rng = np.random.default_rng(1000 + index)
    y, x = np.mgrid[0:rows, 0:rows]
    centre = rows / 2
    body = ((x - centre) / (0.42 * rows)) ** 2 + ((y - centre) / (0.34 * rows)) ** 2 <= 1.0
    bone = (
        np.abs(((x - centre) / (0.2 * rows)) ** 2 + ((y - centre) / (0.15 * rows)) ** 2 - 1) < 0.08
    )
    image = np.full((rows, rows), 24.0)
    image[body] = 1040 + rng.normal(0, 4, size=int(body.sum()))
    image[bone] = 1700 + rng.normal(0, 6, size=int(bone.sum()))
    pixels = np.clip(image, 0, 4095).astype(np.uint16)
    if text:
        canvas = Image.new("L", (rows, rows), 0)
        draw = ImageDraw.Draw(canvas)
        x0, y0, _, _ = TEXT_BOX
        draw.text((x0, y0), BURNED_TEXT[0], fill=255, font=font(16, bold=True))
        draw.text((x0, y0 + 20), BURNED_TEXT[1], fill=255, font=font(16, bold=True))
        drawn = np.asarray(canvas) > 96
        pixels[drawn] = TEXT_VALUE
    return pixels


def write_series(
    folder: Path,
    count: int,
    *,
    rows: int = 512,
    text_at: set[int] | None = None,
    send_order: list[int] | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    first_number: int = 1,
) -> CtSeries:
    """`count` slices numbered first_number.. (Instance Number), written in `send_order`
    (positions; default ascending). `text_at`: positions (by Instance Number order) whose
    slice has burned-in text."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    order = send_order if send_order is not None else list(range(count))
    text_at = text_at or set()
    files: list[Path] = []
    numbers: list[int] = []
    for position in order:
        number = first_number + position
        ds = _slice(study_uid, series_uid, number, rows, position in text_at)
        path = folder / f"ct-{series_uid[-8:]}-{number:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
        numbers.append(number)
    return CtSeries(files, study_uid, series_uid, numbers)


def _slice(study_uid: str, series_uid: str, number: int, rows: int, text: bool) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Manufacturer = "Example Medical"
    ds.PatientName = PIXEL_PATIENT.patient_name
    ds.PatientID = PIXEL_PATIENT.patient_id
    ds.StudyDate = "20240312"
    ds.SeriesNumber = 2
    ds.InstanceNumber = number
    ds.SliceLocation = float(number) * 2.5
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.set_pixel_data(slice_pixels(rows, number, text=text), "MONOCHROME2", 12)
    return ds
