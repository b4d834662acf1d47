"""Made-up images with burned-in text, and the exact pixels of that text, for pixel tests.

Every name, ID and date here is invented.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
    generate_uid,
)
from scipy import ndimage as ndi

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT = FONT_DIR / "DejaVuSans.ttf"  # Debian package fonts-dejavu-core: has Arabic glyphs
FONT_BOLD = FONT_DIR / "DejaVuSans-Bold.ttf"

NAME = "Testpatient Fatima"
PATIENT_ID = "99887766"
BIRTH_DATE = "12/03/1961"
ARABIC_NAME = "مريض تجريبي"
INSTITUTION = "CHU Ibn Rochd"

IDENTIFYING = [
    "Testpatient^Fatima",
    "Testpatient",
    "Fatima",
    PATIENT_ID,
    "19610312",
    BIRTH_DATE,
    "12.03.1961",
    ARABIC_NAME,
    INSTITUTION,
]

ROWS, COLUMNS = 480, 640


@dataclass(frozen=True)
class Text:
    x: int
    y: int
    text: str
    size: int
    colour: tuple[int, int, int]
    bold: bool = False


# Several sizes, colours (including a faint grey) and both scripts; some on the black
# border, some over the image content.
TEXTS = [
    Text(8, 6, NAME, 14, (255, 255, 255)),
    Text(8, 26, f"ID {PATIENT_ID}", 11, (255, 255, 0)),
    Text(470, 6, BIRTH_DATE, 12, (0, 255, 0)),
    Text(440, 446, INSTITUTION, 16, (210, 210, 210), bold=True),
    Text(290, 200, ARABIC_NAME, 20, (255, 255, 255)),
    Text(8, 440, "Fatima", 13, (120, 120, 120)),  # low contrast on the border
]


def _font(item: Text) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_BOLD if item.bold else FONT), item.size)


def background(seed: int, brightness: float = 30.0) -> np.ndarray:
    """An ultrasound-like sector of speckle on black, (rows, columns) uint8; bright
    speckle (brightness 90) is smoothed like a real probe's."""
    rng = np.random.default_rng(seed)
    speckle = rng.rayleigh(brightness, (ROWS, COLUMNS))
    if brightness > 30:
        speckle = ndi.gaussian_filter(speckle, 1.0) * 1.6
    speckle = speckle.clip(0, 255)
    yy, xx = np.mgrid[:ROWS, :COLUMNS]
    sector = ((xx - 320) ** 2 + (yy - 40) ** 2 < 420**2) & (np.abs(xx - 320) < (yy - 40) * 0.9)
    return np.where(sector, speckle, 0).astype(np.uint8)


def draw(
    color: bool,
    seed: int,
    texts: list[Text],
    shift: tuple[int, int] = (0, 0),
    brightness: float = 30.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(image, text mask): the image with `texts` drawn, and every pixel the text touched."""
    base = background(seed, brightness)
    image = Image.fromarray(base).convert("RGB")
    truth = Image.new("L", (COLUMNS, ROWS), 0)
    pen, truth_pen = ImageDraw.Draw(image), ImageDraw.Draw(truth)
    for item in texts:
        position = (item.x + shift[0], item.y + shift[1])
        pen.text(position, item.text, font=_font(item), fill=item.colour)
        truth_pen.text(position, item.text, font=_font(item), fill=255)
    array = np.asarray(image)
    if not color:
        array = np.asarray(image.convert("L"))
    return array.copy(), np.asarray(truth) > 0


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


def _render(size: tuple[int, int], texts: list[Text]) -> tuple[Image.Image, np.ndarray]:
    truth = Image.new("L", size, 0)
    pen = ImageDraw.Draw(truth)
    for item in texts:
        pen.text((item.x, item.y), item.text, font=_font(item), fill=255)
    return truth, np.asarray(truth) > 0


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
        pen.text((item.x, item.y), item.text, font=_font(item), fill=item.colour)
    _, truth = _render(paper.size, texts)
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
    _, truth = _render((512, 512), texts)
    frame = body.clip(0, 4095).astype(np.uint16)
    frame[truth] = 0 if monochrome1 else 4095
    return frame, truth, "MONOCHROME1" if monochrome1 else "MONOCHROME2", 12
