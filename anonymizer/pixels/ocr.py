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
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    # Read over image content (speckle, anatomy) rather than on a plain border or panel.
    busy: bool = False


def dilate(mask: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Binary dilation by a rows x columns rectangle (separable, so fast)."""
    grown = ndi.maximum_filter(mask.view(np.uint8), size=(rows, columns))
    return grown.astype(bool)  # type: ignore[no-any-return]


def to_uint8(frame: np.ndarray, photometric: str, bits_stored: int) -> np.ndarray:
    """An 8-bit grey (rows, cols) or RGB (rows, cols, 3) view for text detection."""
    if frame.dtype == np.uint8 and photometric != "MONOCHROME1":
        return frame
    data = frame.astype(np.float32)
    if frame.dtype != np.uint8:
        # Burned-in text is drawn at an extreme of the stored range (often the very
        # minimum or maximum), so the frame's own min-max keeps it at full contrast;
        # percentiles or a VOI window would clip it into the background.
        lo, hi = float(data.min()), float(data.max())
        if hi <= lo:
            hi = lo + 1
        data = (data - lo) * (255.0 / (hi - lo))
    data = np.clip(data, 0, 255)
    if photometric == "MONOCHROME1":
        data = 255 - data
    return data.astype(np.uint8)


def ink_layers(image: np.ndarray, min_contrast: int, min_chroma: int) -> list[np.ndarray]:
    """Ink strength (0-255) per pixel, one layer per polarity: [light ink, dark ink].

    Local contrast alone also fires on ultrasound speckle and tissue texture, so a pixel
    counts as ink when it stands out and is either drawn at an extreme (bright on dark,
    dark on light), coloured, or sits on a flat black/white background (faint text).
    The polarities are kept apart because the gaps between light letters are themselves
    "dark ink" and would merge the letters into blocks no OCR can read.
    """
    if image.ndim == 3:
        r, g, b = image[..., 0], image[..., 1], image[..., 2]
        hi = np.maximum(np.maximum(r, g), b).astype(np.int16)
        lo = np.minimum(np.minimum(r, g), b).astype(np.int16)
        grey = hi  # coloured text is bright in its strongest channel
        chroma = hi - lo
    else:
        grey = image.astype(np.int16)
        chroma = np.zeros_like(grey)
    # Top-hats keep structures thinner than the window: strokes, not organs or panels.
    size = (11, 11)
    bright = grey - ndi.grey_opening(grey, size=size)
    dark = ndi.grey_closing(grey, size=size) - grey
    # Dark text is looked for only in light areas: in speckle and anatomy every dark
    # pixel between bright ones would look like ink.
    light_area = ndi.uniform_filter(grey.astype(np.float32), size=31) >= 128
    dark = np.where(light_area, dark, 0)
    # Faint text: lower contrast is enough where the neighbourhood is mostly flat black
    # (light ink) or flat white (dark ink): borders, panels, paper.
    faint_contrast = max(20, min_contrast // 2)
    flat_dark = ndi.uniform_filter((grey <= 20).astype(np.float32), size=15) >= 0.6
    flat_light = ndi.uniform_filter((grey >= 235).astype(np.float32), size=15) >= 0.6
    light_ink = ((bright >= min_contrast) & (grey >= 150)) | (
        (bright >= faint_contrast) & flat_dark
    )
    dark_ink = ((dark >= min_contrast) & (grey <= 105)) | ((dark >= faint_contrast) & flat_light)
    light = np.where(light_ink, bright, 0)
    coloured = chroma >= min_chroma
    light = np.maximum(light, np.where(coloured, np.maximum(chroma, bright), 0))
    return [
        np.clip(light, 0, 255).astype(np.uint8),
        np.clip(np.where(dark_ink, dark, 0), 0, 255).astype(np.uint8),
    ]


def grey_of(image: np.ndarray) -> np.ndarray:
    """Brightness for text detection: coloured text is bright in its strongest channel."""
    if image.ndim == 3:
        return np.maximum(np.maximum(image[..., 0], image[..., 1]), image[..., 2])
    return image


def plain_zone(grey: np.ndarray) -> np.ndarray:
    """Where the frame is mostly flat black or white: borders, header bars, panels, paper.

    Text there is grouped apart from text-like specks of the image content next to it, so a
    sector edge full of bright speckle cannot swallow the header line beside it.
    """
    flat = ((grey <= 20) | (grey >= 235)).astype(np.float32)
    return ndi.uniform_filter(flat, size=41) >= 0.5  # type: ignore[no-any-return]


def text_candidates(ink: np.ndarray, plain: np.ndarray) -> np.ndarray:
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
    # Lone specks far from any other shape are noise, not text. Shapes are grouped with
    # their neighbours within their own zone (plain or busy) only.
    near = (5, 15)
    plain_groups, plain_count = ndi.label(dilate(mask & plain, *near))
    busy_groups, busy_count = ndi.label(dilate(mask & ~plain, *near))
    groups = np.where(plain, plain_groups, np.where(busy_groups > 0, busy_groups + plain_count, 0))
    groups = np.where(mask, groups, 0)
    group_count = plain_count + busy_count
    if group_count == 0:
        return mask
    pixels_per_group = np.bincount(groups[mask], minlength=group_count + 1)
    good = pixels_per_group >= 12
    good[0] = False
    # A text line is a band (horizontal or vertical); specks strung along an organ or a
    # sector edge spread both ways.
    for index, box in enumerate(ndi.find_objects(groups), start=1):
        if box is not None and min(box[0].stop - box[0].start, box[1].stop - box[1].start) > 100:
            good[index] = False
    return mask & good[groups]


@dataclass(frozen=True)
class Placement:
    """Where one text band of the frame was pasted on the OCR page, and at what scale."""

    frame_x: int
    frame_y: int
    page_x: int
    page_y: int
    width: int  # on the page
    height: int
    scale: float
    # Vertical text is OCR'd turned by 90 degrees; a word read there masks the whole band.
    band_width: int = 0
    band_height: int = 0
    rotated: bool = False
    busy: bool = False


# Every band is scaled to about this height (padding included) before OCR. Measured
# with tesseract 5.3 ara+fra+eng: Latin lines read from 16 to 40 px, Arabic only from 16
# to 24 px; small annotation text is missed at native size (hence the upscaling).
BAND_HEIGHT_PX = 22
# A band this tall, and this many times taller than wide, is vertical text.
VERTICAL_MIN_PX = 30
VERTICAL_RATIO = 2.5
_GAP = 16


def text_bands(candidates: np.ndarray) -> list[tuple[slice, slice]]:
    """Bounding boxes of text lines: candidate ink grouped along the writing direction."""
    lines = dilate(candidates, 3, 15)
    labels, count = ndi.label(lines)
    # The extent of the ink itself, not of the dilation (which would widen every band).
    inked = np.where(candidates, labels, 0)
    return [b for b in ndi.find_objects(inked)[:count] if b is not None]


def ocr_page(
    layers: Sequence[tuple[np.ndarray, np.ndarray]], plain: np.ndarray, upscale: float
) -> tuple[Image.Image, list[Placement]] | None:
    """The page shown to tesseract: each text band's ink, dark on white, one per row.

    `layers` are (ink, candidates) pairs, one per polarity. Only the bands are OCR'd
    (cropping them is what made tesseract both fast and complete when measured), each
    scaled to a height tesseract reads well and stretched to full contrast.
    """
    crops: list[tuple[Image.Image, int, int, float, int, int, bool, bool]] = []
    for ink, candidates in layers:
        if not candidates.any():
            continue
        around = dilate(candidates, 5, 5)
        strength = np.where(around, ink, 0).astype(np.float32)
        rows, columns = strength.shape
        for band in text_bands(candidates):
            y0, y1 = max(0, band[0].start - 4), min(rows, band[0].stop + 4)
            x0, x1 = max(0, band[1].start - 4), min(columns, band[1].stop + 4)
            piece = strength[y0:y1, x0:x1]
            peak = float(piece.max())
            if peak <= 0:
                continue
            # Stretch faint ink to full black so low-contrast text reads like the rest.
            paper = (255 - np.clip(piece * (255.0 / peak) * 1.6, 0, 255)).astype(np.uint8)
            crop = Image.fromarray(paper, mode="L")
            height, width = y1 - y0, x1 - x0
            busy = bool(candidates[band][~plain[band]].sum() * 2 > candidates[band].sum())
            vertical = height >= VERTICAL_MIN_PX and height > VERTICAL_RATIO * width
            # Vertical text (side labels, a film scanned sideways) is read both ways up.
            turns = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270) if vertical else ()
            versions = [crop.transpose(t) for t in turns] if vertical else [crop]
            line_height = width if vertical else height
            scale = min(upscale, max(0.3, BAND_HEIGHT_PX / line_height))
            for version in versions:
                if scale != 1.0:
                    version = version.resize(
                        (
                            max(1, round(version.width * scale)),
                            max(1, round(version.height * scale)),
                        ),
                        Image.Resampling.BICUBIC,
                    )
                crops.append((version, x0, y0, scale, width, height, vertical, busy))
    if not crops:
        return None
    width = max(c[0].width for c in crops) + 2 * _GAP
    height = sum(c[0].height + _GAP for c in crops) + _GAP
    page = Image.new("L", (width, height), 255)
    placements: list[Placement] = []
    cursor = _GAP
    for crop, x0, y0, scale, band_width, band_height, rotated, busy in crops:
        page.paste(crop, (_GAP, cursor))
        placements.append(
            Placement(
                x0,
                y0,
                _GAP,
                cursor,
                crop.width,
                crop.height,
                scale,
                band_width,
                band_height,
                rotated,
                busy,
            )
        )
        cursor += crop.height + _GAP
    return page, placements


TESSDATA_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
)


def tessdata_dir(settings: OcrSettings) -> Path | None:
    """The folder holding every language the policy asks for, or None."""
    candidates = [settings.tessdata] if settings.tessdata else list(TESSDATA_DIRS)
    for candidate in candidates:
        folder = Path(candidate)
        if all((folder / f"{lang}.traineddata").is_file() for lang in settings.languages):
            return folder
    return None


class _Engine:
    """One loaded tesserocr API per (tessdata, languages): loading the models costs more
    than reading a page, so a worker keeps them."""

    _lock = threading.Lock()
    _apis: dict[tuple[str, str], tuple[Any, threading.Lock]] = {}

    @classmethod
    def api(cls, folder: Path, languages: str) -> tuple[Any, threading.Lock] | None:
        try:
            import tesserocr
        except ImportError:
            return None
        key = (str(folder), languages)
        with cls._lock:
            if key not in cls._apis:
                api = tesserocr.PyTessBaseAPI(
                    path=str(folder) + "/", lang=languages, psm=tesserocr.PSM.SPARSE_TEXT
                )
                cls._apis[key] = (api, threading.Lock())
            return cls._apis[key]


def _tesserocr_tsv(image: Image.Image, settings: OcrSettings) -> str | None:
    folder = tessdata_dir(settings)
    if folder is None:
        if settings.engine == "tesserocr":
            raise QuarantineError(
                QuarantineReason.OCR_UNAVAILABLE, "tesseract language data not found"
            )
        return None
    try:
        loaded = _Engine.api(folder, "+".join(settings.languages))
    except RuntimeError as exc:
        raise QuarantineError(
            QuarantineReason.OCR_UNAVAILABLE, "tesserocr could not load the languages"
        ) from exc
    if loaded is None:
        if settings.engine == "tesserocr":
            raise QuarantineError(QuarantineReason.OCR_UNAVAILABLE, "tesserocr is not installed")
        return None
    api, lock = loaded
    with lock:
        api.SetImage(image)
        tsv: str = api.GetTSVText(0)
    # The API gives rows without tesseract's header line; parse_tsv skips line one.
    return "level\n" + tsv


def run_tesseract(image: Image.Image, settings: OcrSettings) -> str:
    """TSV output of tesseract for `image`; OCR_UNAVAILABLE when it cannot run."""
    if settings.engine in ("auto", "tesserocr"):
        tsv = _tesserocr_tsv(image, settings)
        if tsv is not None:
            return tsv
    return _cli_tsv(image, settings)


def _cli_tsv(image: Image.Image, settings: OcrSettings) -> str:
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
    if settings.tessdata:
        args[1:1] = ["--tessdata-dir", settings.tessdata]
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


def parse_tsv(tsv: str, placements: Sequence[Placement]) -> list[Word]:
    """Words of tesseract's TSV, mapped back from the page to frame coordinates."""
    words: list[Word] = []
    for line in tsv.splitlines()[1:]:
        cells = line.split("\t")
        # Words without a letter or digit ("|", "—") are rulers and tick marks, not PHI.
        if len(cells) < 12 or cells[0] != "5" or not any(ch.isalnum() for ch in cells[11]):
            continue
        left, top, width, height = (int(c) for c in cells[6:10])
        cx, cy = left + width / 2, top + height / 2
        place = next(
            (
                p
                for p in placements
                if p.page_x <= cx <= p.page_x + p.width and p.page_y <= cy <= p.page_y + p.height
            ),
            None,
        )
        if place is None:
            continue
        if place.rotated:
            words.append(
                Word(
                    place.frame_x,
                    place.frame_y,
                    place.band_width,
                    place.band_height,
                    cells[11].strip(),
                    float(cells[10]),
                    place.busy,
                )
            )
            continue
        x0 = place.frame_x + int(np.floor((left - place.page_x) / place.scale))
        y0 = place.frame_y + int(np.floor((top - place.page_y) / place.scale))
        x1 = place.frame_x + int(np.ceil((left + width - place.page_x) / place.scale))
        y1 = place.frame_y + int(np.ceil((top + height - place.page_y) / place.scale))
        words.append(
            Word(
                x0,
                y0,
                max(1, x1 - x0),
                max(1, y1 - y0),
                cells[11].strip(),
                float(cells[10]),
                place.busy,
            )
        )
    return words


@dataclass(frozen=True)
class FrameText:
    """What OCR saw in one frame: the words, and the ink shapes that produced them."""

    words: list[Word]
    candidates: np.ndarray


@dataclass(frozen=True)
class Ink:
    """What a frame shows that may be text: (ink, candidates) per polarity, and its zones."""

    layers: list[tuple[np.ndarray, np.ndarray]]
    plain: np.ndarray

    @property
    def candidates(self) -> np.ndarray:
        return np.logical_or.reduce([c for _, c in self.layers])  # type: ignore[no-any-return]


def find_ink(image: np.ndarray, *, min_contrast: int, min_chroma: int) -> Ink:
    """Text-like ink of a frame: cheap (no OCR), also used to decide which frames to read."""
    plain = plain_zone(grey_of(image))
    inks = ink_layers(image, min_contrast, min_chroma)
    return Ink([(ink, text_candidates(ink, plain)) for ink in inks], plain)


def read_ink(ink: Ink, settings: OcrSettings) -> FrameText:
    candidates = ink.candidates
    laid_out = ocr_page(ink.layers, ink.plain, settings.upscale)
    if laid_out is None:
        return FrameText([], candidates)
    page, placements = laid_out
    tsv = run_tesseract(page, settings)
    return FrameText(parse_tsv(tsv, placements), candidates)


def read_frame(
    image: np.ndarray, settings: OcrSettings, *, min_contrast: int, min_chroma: int
) -> FrameText:
    return read_ink(find_ink(image, min_contrast=min_contrast, min_chroma=min_chroma), settings)
