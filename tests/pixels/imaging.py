"""Made-up images with burned-in text, and the exact pixels of that text, for pixel tests.

The ultrasound drawing is the one the benchmark corpus uses (tests.support.ultrasound);
this module adds the pixel tests' patient, other image kinds and encodings. Every name, ID
and date here is invented.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
    generate_uid,
)

from tests.support.identities import ARABIC_NAME, INSTITUTION, PIXEL_PATIENT
from tests.support.ultrasound import (
    COLUMNS,
    FONT,
    FONT_BOLD,
    ROWS,
    Text,
    background,
    burned_in_texts,
    draw,
    font,
    render_mask,
)

__all__ = [
    "ARABIC_NAME",
    "BIRTH_DATE",
    "COLUMNS",
    "FONT",
    "FONT_BOLD",
    "IDENTIFYING",
    "INSTITUTION",
    "NAME",
    "PATIENT_ID",
    "ROWS",
    "TEXTS",
    "Text",
    "background",
    "dataset",
    "draw",
    "encode",
    "scanned_report",
    "xray_12bit",
]

NAME = PIXEL_PATIENT.display_name
PATIENT_ID = PIXEL_PATIENT.patient_id
BIRTH_DATE = PIXEL_PATIENT.birth_date_shown

IDENTIFYING = PIXEL_PATIENT.identifying_values()

TEXTS = burned_in_texts(PIXEL_PATIENT)


def dataset(
    frames: list[np.ndarray],
    *,
    modality: str = "US",
    sop_class: str = "1.2.840.10008.5.1.4.1.1.6.1",
    burned_in: str | None = None,
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.Manufacturer = "Example Medical"
    ds.PatientName = "Testpatient^Fatima"
    ds.PatientID = PATIENT_ID
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    stacked = np.stack(frames) if len(frames) > 1 else frames[0]
    color = frames[0].ndim == 3
    ds.set_pixel_data(stacked, "RGB" if color else "MONOCHROME2", 8, generate_instance_uid=False)
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    return ds


def encode(ds: Dataset, syntax: str, frames: list[np.ndarray]) -> Dataset:
    """Re-store `ds` in `syntax` (native, rle, j2k or jpeg baseline via Pillow)."""
    if syntax == "native":
        return ds
    if syntax == "rle":
        ds.compress(RLELossless, generate_instance_uid=False)
    elif syntax == "j2k":
        ds.compress(JPEG2000Lossless, generate_instance_uid=False)
    elif syntax == "jpeg":
        fragments = []
        for frame in frames:
            buffer = io.BytesIO()
            Image.fromarray(frame).save(buffer, format="JPEG", quality=92, subsampling=0)
            fragments.append(buffer.getvalue())
        ds.PixelData = encapsulate(fragments)
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        if frames[0].ndim == 3:
            ds.PhotometricInterpretation = "YBR_FULL"
        ds.LossyImageCompression = "01"
    else:
        raise ValueError(syntax)
    return ds


def scanned_report() -> tuple[np.ndarray, np.ndarray, str, int]:
    """A scanned paper report: dark blue text on off-white paper, RGB."""
    texts = [
        Text(40, 40, f"Compte rendu - {NAME}", 22, (20, 20, 90)),
        Text(40, 80, f"IPP {PATIENT_ID}  Né le {BIRTH_DATE}", 14, (20, 20, 90)),
        Text(40, 120, ARABIC_NAME, 18, (20, 20, 90)),
        Text(40, 400, f"{INSTITUTION}, Casablanca", 10, (60, 60, 60)),
    ]
    paper = Image.new("RGB", (800, 600), (250, 250, 245))
    pen = ImageDraw.Draw(paper)
    for item in texts:
        pen.text((item.x, item.y), item.text, font=font(item.size, item.bold), fill=item.colour)
    truth = render_mask(paper.size, texts)
    return np.asarray(paper).copy(), truth, "RGB", 8


def xray_12bit(monochrome1: bool) -> tuple[np.ndarray, np.ndarray, str, int]:
    """A 12-bit X-ray-like frame, text written at the extreme that displays white."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:512, :512]
    body = rng.normal(1800, 200, (512, 512)) + 1200 * np.exp(
        -((xx - 256) ** 2 + (yy - 256) ** 2) / (2 * 80**2)
    )
    texts = [
        Text(10, 478, f"{NAME} {BIRTH_DATE}", 13, (255, 255, 255)),
        Text(330, 10, f"ID {PATIENT_ID}", 12, (255, 255, 255)),
    ]
    truth = render_mask((512, 512), texts)
    frame = body.clip(0, 4095).astype(np.uint16)
    frame[truth] = 0 if monochrome1 else 4095
    return frame, truth, "MONOCHROME1" if monochrome1 else "MONOCHROME2", 12
