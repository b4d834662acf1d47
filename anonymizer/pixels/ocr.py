"""Find burned-in words in one frame with tesseract.

Only the frame's ink (ink.py) is read: each text band is cropped, scaled to a height
tesseract reads well and laid out on one page, dark on white; the words tesseract finds
there are mapped back to frame coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from .ink import DRAWN_LAYER, Ink, dilate, find_ink, grey_of, text_bands, to_uint8
from .policy import OcrSettings
from .tesseract import run_tesseract

# The ink helpers were defined here before ink.py existed; callers still find them here.
__all__ = [
    "FrameText",
    "Ink",
    "Placement",
    "Word",
    "dilate",
    "find_ink",
    "grey_of",
    "ocr_page",
    "parse_tsv",
    "read_frame",
    "read_ink",
    "read_pages",
    "run_tesseract",
    "to_uint8",
]


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


def _line_heights(ink: np.ndarray, band_height: int) -> list[int]:
    """Height of one line of the band's text (padding included): a band may hold several
    lines that touch, and must be scaled by its letters, not by its own height.

    Usually one height. Two when the tallest shape is more than twice as tall as most of
    the band's letters: a word touching a colour bar or a logo ("PWR" on an ultrasound
    scale) would be shrunk out of reach by the big shape, so it is also read at its own
    size."""
    labels, count = ndi.label(ink)
    if count == 0:
        return [band_height]
    heights = [b[0].stop - b[0].start for b in ndi.find_objects(labels) if b is not None]
    # The tallest shape: a whole Arabic word part or a capital, not dots and accents.
    letters = max(heights)
    found = [min(band_height, max(letters, 4) + 8)]
    # Letter-sized shapes (dots and accents left out) that are most of the band's shapes.
    small = sorted(h for h in heights if h >= 5)
    typical = small[len(small) // 2] if small else letters
    if letters > 2 * typical:
        found.append(min(band_height, typical + 8))
    return found


def ocr_page(
    layers: Sequence[tuple[np.ndarray, np.ndarray]], plain: np.ndarray, upscale: float
) -> tuple[Image.Image, list[Placement]] | None:
    """The page shown to tesseract: each text band's ink, dark on white, one per row.

    `layers` are (ink, candidates) pairs, one per polarity. Only the bands are OCR'd
    (cropping them is what made tesseract both fast and complete when measured), each
    scaled to a height tesseract reads well and stretched to full contrast.
    """
    crops: list[tuple[Image.Image, int, int, float, int, int, bool, bool]] = []
    # A band often shows the same pixels in two layers (the dark panels' layer equals the
    # light one where it adds nothing there): tesseract reads such a crop once.
    shown: set[tuple[bytes, int, int, int, int, float, bool, bool]] = set()
    for number, (ink, candidates) in enumerate(layers):
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
            # Flat-coloured text (the third layer) is drawn, not read from noise: its words
            # are trusted like those on plain areas.
            busy = number != DRAWN_LAYER and bool(
                candidates[band][~plain[band]].sum() * 2 > candidates[band].sum()
            )
            vertical = height >= VERTICAL_MIN_PX and height > VERTICAL_RATIO * width
            # Vertical text (side labels, a film scanned sideways) is read both ways up.
            turns = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270) if vertical else ()
            versions = [crop.transpose(t) for t in turns] if vertical else [crop]
            line_heights = [width] if vertical else _line_heights(candidates[band], height)
            for line_height in line_heights:
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
                    key = (version.tobytes(), version.width, x0, y0, width, scale, vertical, busy)
                    if key in shown:
                        continue
                    shown.add(key)
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
    # Plain areas (flat borders, bars, paper) of the frame, and its flat pixels.
    plain: np.ndarray | None = None
    flat: np.ndarray | None = None


def read_ink(ink: Ink, settings: OcrSettings) -> FrameText:
    candidates = ink.candidates
    laid_out = ocr_page(ink.layers, ink.plain, settings.upscale)
    if laid_out is None:
        return FrameText([], candidates, ink.plain, ink.flat)
    page, placements = laid_out
    tsv = run_tesseract(page, settings)
    return FrameText(parse_tsv(tsv, placements), candidates, ink.plain, ink.flat)


def read_frame(
    image: np.ndarray,
    settings: OcrSettings,
    *,
    min_contrast: int,
    min_chroma: int,
    light_floor: int | None = None,
) -> FrameText:
    found = find_ink(
        image, min_contrast=min_contrast, min_chroma=min_chroma, light_floor=light_floor
    )
    return read_ink(found, settings)


Page = tuple[Image.Image, list[Placement]]


def read_pages(pages: Sequence[Page | None], settings: OcrSettings) -> list[list[Word]]:
    """The words of several pages, read by one tesseract call: the pages are stacked, each
    word goes back to the page (and band) it was read on. A call has a fixed cost (page
    layout, language state), paid once here."""
    present = [p for p in pages if p is not None]
    if not present:
        return [[] for _ in pages]
    width = max(page.width for page, _ in present)
    height = sum(page.height for page, _ in present)
    stacked = Image.new("L", (width, height), 255)
    top = 0
    shifted: list[list[Placement]] = []
    for page, placements in present:
        stacked.paste(page.convert("L"), (0, top))
        shifted.append([replace(p, page_y=p.page_y + top) for p in placements])
        top += page.height
    tsv = run_tesseract(stacked, settings)
    read = iter([parse_tsv(tsv, placements) for placements in shifted])
    return [[] if p is None else next(read) for p in pages]
