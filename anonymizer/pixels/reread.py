"""A second, independent reading of a masked frame, for verification.

Detection (ink.py, ocr.py) finds text as local contrast (top-hats, flat-colour spikes),
scales every band to ~22 px and shows tesseract the ink strength. A check that replays the
same steps inherits the same blind spots, so this reading shares none of them: the
frame's luminance (ITU-R BT.601, not the strongest channel) is cut at global levels
(light text, dark text on light areas, and coloured text), glyph-sized shapes are grouped
into lines, and each line is shown to tesseract as a black-and-white crop at ~32 px.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from .ink import dilate, flat_pixels
from .ocr import Placement, Word, parse_tsv
from .policy import OcrSettings
from .tesseract import run_tesseract

# Global levels (0-255 luminance): light text is drawn near white, dark text near black on
# a light panel; coloured text stands out by saturation whatever its luminance.
LIGHT_LEVEL = 150
DARK_LEVEL = 90
LIGHT_PANEL = 160
COLOUR_CHROMA = 70
# Glyph-sized shapes (pixels): a letter, or a few letters touching in small fonts.
GLYPH_HEIGHT = (4, 40)
GLYPH_MAX_WIDTH_RATIO = 8.0
GLYPH_MIN_FILL, GLYPH_MAX_FILL = 0.08, 0.85
LINE_HEIGHT_PX = 32
MIN_SHAPES_PER_LINE = 2
# A line whose surroundings are less than this fraction flat lies over image content.
BUSY_BELOW_FLAT = 0.5
_GAP = 12


def luminance(image: np.ndarray) -> np.ndarray:
    """8-bit luminance of a grey (rows, cols) or RGB (rows, cols, 3) display image."""
    if image.ndim == 2:
        return image.astype(np.uint8)
    rgb = image.astype(np.float32)
    luma = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    return np.clip(luma + 0.5, 0, 255).astype(np.uint8)


def _layers(image: np.ndarray) -> list[np.ndarray]:
    grey = luminance(image)
    light = grey >= LIGHT_LEVEL
    panel = ndi.uniform_filter(grey.astype(np.float32), size=25) >= LIGHT_PANEL
    layers = [light, (grey <= DARK_LEVEL) & panel]
    if image.ndim == 3:
        channels = image.astype(np.int16)
        chroma = channels.max(axis=2) - channels.min(axis=2)
        layers.append((chroma >= COLOUR_CHROMA) & ~light)
    return layers


def _glyphs(binary: np.ndarray) -> np.ndarray:
    """The shapes of `binary` that have the size and density of letters."""
    labels, count = ndi.label(binary)
    if count == 0:
        return np.zeros(binary.shape, dtype=bool)
    keep = np.zeros(count + 1, dtype=bool)
    areas = ndi.sum_labels(binary, labels, index=np.arange(1, count + 1))
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        height, width = box[0].stop - box[0].start, box[1].stop - box[1].start
        fill = float(areas[index - 1]) / (height * width)
        keep[index] = (
            GLYPH_HEIGHT[0] <= height <= GLYPH_HEIGHT[1]
            and width <= GLYPH_MAX_WIDTH_RATIO * height
            and GLYPH_MIN_FILL <= fill <= GLYPH_MAX_FILL
        )
    return keep[labels]  # type: ignore[no-any-return]


def _line_crops(
    binary: np.ndarray, flat: np.ndarray
) -> list[tuple[Image.Image, int, int, float, bool]]:
    glyphs = _glyphs(binary)
    if not glyphs.any():
        return []
    lines, count = ndi.label(dilate(glyphs, 3, 15))
    shapes, _ = ndi.label(glyphs)
    rows, columns = binary.shape
    crops: list[tuple[Image.Image, int, int, float, bool]] = []
    for index, box in enumerate(ndi.find_objects(lines)[:count], start=1):
        if box is None:
            continue
        height, width = box[0].stop - box[0].start, box[1].stop - box[1].start
        if width < 6 or height < 5:
            continue
        # One shape alone is a mark, a dot or a blob; remaining text of three letters or
        # more shows at least two (letters touch in small fonts, but not all of them).
        members = np.unique(shapes[box][lines[box] == index])
        if np.count_nonzero(members) < MIN_SHAPES_PER_LINE:
            continue
        y0, y1 = max(0, box[0].start - 3), min(rows, box[0].stop + 3)
        x0, x1 = max(0, box[1].start - 3), min(columns, box[1].stop + 3)
        # The whole binary crop, not only the glyph shapes: a letter that touches a
        # mask edge or a neighbour is still shown.
        paper = np.where(binary[y0:y1, x0:x1], 0, 255).astype(np.uint8)
        crop = Image.fromarray(paper, mode="L")
        scale = float(np.clip(LINE_HEIGHT_PX / max(height, 1), 1.0, 3.0))
        if scale != 1.0:
            crop = crop.resize(
                (max(1, round(crop.width * scale)), max(1, round(crop.height * scale))),
                Image.Resampling.BILINEAR,
            )
        # Over image content (not on a flat border or panel) speckle can look like letters.
        around = flat[max(0, y0 - 6) : y1 + 6, max(0, x0 - 6) : x1 + 6]
        busy = float(around.mean()) < BUSY_BELOW_FLAT
        crops.append((crop, x0, y0, scale, busy))
    return crops


def read_independently(image: np.ndarray, settings: OcrSettings) -> list[Word]:
    """Words read in `image` (a display frame) by the independent preprocessing."""
    laid_out = independent_page(image)
    if laid_out is None:
        return []
    page, placements = laid_out
    return parse_tsv(run_tesseract(page, settings), placements)


def independent_page(image: np.ndarray) -> tuple[Image.Image, list[Placement]] | None:
    """The page the independent reading shows tesseract, and where its lines came from;
    None when `image` has no glyph-like line at all."""
    flat = flat_pixels(luminance(image))
    crops = [crop for layer in _layers(image) for crop in _line_crops(layer, flat)]
    if not crops:
        return None
    width = max(c[0].width for c in crops) + 2 * _GAP
    height = sum(c[0].height + _GAP for c in crops) + _GAP
    page = Image.new("L", (width, height), 255)
    placements: list[Placement] = []
    cursor = _GAP
    for crop, x0, y0, scale, busy in crops:
        page.paste(crop, (_GAP, cursor))
        placements.append(
            Placement(x0, y0, _GAP, cursor, crop.width, crop.height, scale, busy=busy)
        )
        cursor += crop.height + _GAP
    return page, placements
