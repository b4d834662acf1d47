"""Find burned-in words in one frame with tesseract.

Tesseract alone does badly on medical images: ultrasound speckle and anatomy are read as
thousands of garbage words (slow), and small annotation text is missed at native size.
So each frame is first reduced to its "ink": pixels that stand out from their
neighbourhood by brightness, darkness or colour, in small connected shapes. Only the ink
(with its anti-aliasing) is shown to tesseract, dark on white and upscaled; everything
else is blank paper, which tesseract skips quickly.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from amana.errors import QuarantineError, QuarantineReason

from .policy import OcrSettings


@dataclass(frozen=True)
class Word:
    """One word read by tesseract, in frame pixel coordinates."""

    x: int
    y: int
    width: int
    height: int
    text: str
    confidence: float


def to_uint8(frame: np.ndarray, photometric: str, bits_stored: int) -> np.ndarray:
    """An 8-bit grey (rows, cols) or RGB (rows, cols, 3) view for text detection."""
    if frame.dtype == np.uint8 and photometric != "MONOCHROME1":
        return frame
    data = frame.astype(np.float32)
    if frame.dtype != np.uint8:
        # Burned-in text is drawn at or near the extremes of the stored range; a robust
        # min-max keeps it at the top (windowing would be device-specific).
        lo, hi = np.percentile(data, [0.5, 99.9]) if data.size > 1000 else (data.min(), data.max())
        hi = max(hi, data.max() if bits_stored <= 8 else hi)
        if hi <= lo:
            hi = lo + 1
        data = (data - lo) * (255.0 / (hi - lo))
    data = np.clip(data, 0, 255)
    if photometric == "MONOCHROME1":
        data = 255 - data
    return data.astype(np.uint8)


def ink_map(image: np.ndarray, min_contrast: int, min_chroma: int) -> np.ndarray:
    """Ink strength (0-255) of every pixel: local contrast or colour, whichever is larger."""
    if image.ndim == 3:
        hi = image.max(axis=2).astype(np.int16)
        lo = image.min(axis=2).astype(np.int16)
        grey = hi  # coloured text is bright in its strongest channel
        chroma = hi - lo
    else:
        grey = image.astype(np.int16)
        chroma = np.zeros_like(grey)
    # Top-hats keep structures thinner than the window: strokes, not organs or panels.
    size = (11, 11)
    bright = grey - ndi.grey_opening(grey, size=size)
    dark = ndi.grey_closing(grey, size=size) - grey
    contrast = np.maximum(bright, dark)
    ink = np.where(contrast >= min_contrast, contrast, 0)
    ink = np.maximum(ink, np.where(chroma >= min_chroma, chroma, 0))
    return np.clip(ink, 0, 255).astype(np.uint8)


def text_candidates(ink: np.ndarray) -> np.ndarray:
    """Mask of ink pixels in glyph-sized shapes that sit next to other glyph-sized shapes."""
    strong = ink > 0
    labels, count = ndi.label(strong)
    if count == 0:
        return strong
    keep = np.zeros(count + 1, dtype=bool)
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        h = box[0].stop - box[0].start
        w = box[1].stop - box[1].start
        # Glyphs (or glyphs run together) are at most a few tens of pixels tall.
        keep[index] = 2 <= h <= 80 and w <= 400 and (h >= 3 or w >= 3)
    mask = keep[labels]
    # Lone specks far from any other shape are noise, not text.
    neighbourhood = ndi.binary_dilation(mask, structure=np.ones((5, 15), dtype=bool))
    groups, group_count = ndi.label(neighbourhood)
    if group_count == 0:
        return mask
    pixels_per_group = np.bincount(groups[mask], minlength=group_count + 1)
    good = pixels_per_group >= 12
    good[0] = False
    return mask & good[groups]


def ocr_image(ink: np.ndarray, candidates: np.ndarray, upscale: float) -> Image.Image | None:
    """The page shown to tesseract: candidate ink (with anti-aliasing) dark on white."""
    if not candidates.any():
        return None
    around = ndi.binary_dilation(candidates, iterations=2)
    strength = np.where(around, ink, 0).astype(np.float32)
    peak = float(strength.max())
    if peak <= 0:
        return None
    # Stretch faint ink to full black so low-contrast text reads like the rest.
    page = 255 - np.clip(strength * (255.0 / peak) * 1.6, 0, 255)
    image = Image.fromarray(page.astype(np.uint8), mode="L")
    if upscale != 1.0:
        size = (round(image.width * upscale), round(image.height * upscale))
        image = image.resize(size, Image.Resampling.BICUBIC)
    # White border so text touching the frame edge is still segmented.
    bordered = Image.new("L", (image.width + 20, image.height + 20), 255)
    bordered.paste(image, (10, 10))
    return bordered


def run_tesseract(image: Image.Image, settings: OcrSettings) -> str:
    """TSV output of tesseract for `image`; OCR_UNAVAILABLE when it cannot run."""
    command = shutil.which(settings.command)
    if command is None:
        raise QuarantineError(QuarantineReason.OCR_UNAVAILABLE, "tesseract is not installed")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    args = [
        command,
        "stdin",
        "stdout",
        "--psm",
        "11",  # sparse text: annotations are scattered words, not paragraphs
        "-l",
        "+".join(settings.languages),
        "tsv",
    ]
    try:
        done = subprocess.run(
            args,
            input=buffer.getvalue(),
            capture_output=True,
            timeout=settings.timeout_seconds,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise QuarantineError(
            QuarantineReason.OCR_UNAVAILABLE, f"tesseract failed ({type(exc).__name__})"
        ) from exc
    if done.returncode != 0:
        raise QuarantineError(
            QuarantineReason.OCR_UNAVAILABLE, f"tesseract exited with status {done.returncode}"
        )
    return done.stdout.decode("utf-8", errors="replace")


def parse_tsv(tsv: str, scale: float, offset: int) -> list[Word]:
    words: list[Word] = []
    for line in tsv.splitlines()[1:]:
        cells = line.split("\t")
        if len(cells) < 12 or cells[0] != "5" or not cells[11].strip():
            continue
        left, top, width, height = (int(c) for c in cells[6:10])
        x0 = int(np.floor((left - offset) / scale))
        y0 = int(np.floor((top - offset) / scale))
        x1 = int(np.ceil((left + width - offset) / scale))
        y1 = int(np.ceil((top + height - offset) / scale))
        words.append(
            Word(x0, y0, max(1, x1 - x0), max(1, y1 - y0), cells[11].strip(), float(cells[10]))
        )
    return words


@dataclass(frozen=True)
class FrameText:
    """What OCR saw in one frame: the words, and the ink shapes that produced them."""

    words: list[Word]
    candidates: np.ndarray


def read_frame(
    image: np.ndarray, settings: OcrSettings, *, min_contrast: int, min_chroma: int
) -> FrameText:
    ink = ink_map(image, min_contrast, min_chroma)
    candidates = text_candidates(ink)
    page = ocr_image(ink, candidates, settings.upscale)
    if page is None:
        return FrameText([], candidates)
    tsv = run_tesseract(page, settings)
    return FrameText(parse_tsv(tsv, settings.upscale, 10), candidates)


def check_available(settings: OcrSettings) -> None:
    if shutil.which(settings.command) is None:
        raise QuarantineError(QuarantineReason.OCR_UNAVAILABLE, "tesseract is not installed")


def languages_key(languages: Sequence[str]) -> str:
    return "+".join(languages)
