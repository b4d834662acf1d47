"""Text-like ink in one frame: what OCR is shown, found without OCR.

Tesseract alone does badly on medical images: ultrasound speckle and anatomy are read as
thousands of garbage words (slow), and small annotation text is missed at native size.
So each frame is first reduced to its "ink": pixels that stand out from their
neighbourhood by brightness, darkness or colour, in small connected shapes. Only the ink
(with its anti-aliasing) is shown to tesseract (ocr.py); everything else is blank paper,
which tesseract skips quickly. The ink of the frames OCR reads also tells cine.py where a
multi-frame image's text strokes are, to compare the other frames with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from . import morph


def dilate(mask: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Binary dilation by a rows x columns rectangle (separable, so fast)."""
    return morph.maximum(mask.astype(bool, copy=False), (rows, columns))


def to_uint8(frame: np.ndarray, photometric: str, bits_stored: int) -> np.ndarray:
    """An 8-bit grey (rows, cols) or RGB (rows, cols, 3) view for text detection."""
    full_byte = frame.dtype == np.uint8 and bits_stored >= 8
    if full_byte and photometric != "MONOCHROME1":
        return frame
    data = frame.astype(np.float32)
    if not full_byte:
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


def flat_pixels(grey: np.ndarray) -> np.ndarray:
    """Pixels of uniform areas (borders, panels, paper, whatever their level): their 3x3
    neighbourhood hardly varies, unlike speckle, anatomy or noise."""
    spread = morph.maximum(grey, (3, 3)).astype(np.int16) - morph.minimum(grey, (3, 3))
    return spread <= 6  # type: ignore[no-any-return]


def ink_layers(
    image: np.ndarray,
    min_contrast: int,
    min_chroma: int,
    plain: np.ndarray,
    light_floor: int | None = None,
    panels: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Ink strength (0-255) per pixel, one layer per polarity: [light ink, dark ink], the
    raw local contrast of every pixel (used to draw flat-coloured text, see below), and
    the light ink of dark `panels` held to the plain floor instead of the frame's (a
    superset of the light layer, empty without `panels`).

    Local contrast alone also fires on ultrasound speckle and tissue texture, so a pixel
    counts as ink when it stands out and is either drawn at an extreme (bright on dark,
    dark on light), coloured, or sits in a mostly uniform area (faint text on a border,
    panel or paper). The polarities are kept apart because the gaps between light letters
    are themselves "dark ink"; `resolve_polarity` settles each line afterwards.
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
    floor = morph.opening(grey, size)  # the background under light strokes
    ceiling = morph.closing(grey, size)  # the background around dark strokes
    bright = grey - floor
    dark = ceiling - grey
    # Dark text is looked for in light areas and on uniform panels only: in speckle and
    # anatomy every dark pixel between bright ones would look like ink.
    light_area = ndi.uniform_filter(grey.astype(np.float32), size=31) >= 128
    dark = np.where(light_area | plain, dark, 0)
    # Faint text: lower contrast is enough where most of the neighbourhood sits at the
    # background level (a border, panel or paper), unlike speckle or anatomy.
    faint_contrast = max(20, min_contrast // 2)
    at_floor = ndi.uniform_filter((bright <= 6).astype(np.float32), size=15) >= 0.5
    at_ceiling = ndi.uniform_filter((dark <= 6).astype(np.float32), size=15) >= 0.5
    # Light text is drawn near the top of the range. Over bright image content (speckle
    # reaching 200 and more) only what is brighter than almost all of that content counts,
    # so text there is not buried in a crowd of bright specks.
    floor = np.full(grey.shape, 150, dtype=np.int16)
    busy = ~plain
    if busy.any():
        floor[busy] = busy_light_floor(grey, plain) if light_floor is None else light_floor
    light_ink = ((bright >= min_contrast) & (grey >= floor)) | (
        (bright >= faint_contrast) & at_floor
    )
    # Only ever more ink: a second layer, so the bands of the first are read as before.
    panel_ink = np.zeros_like(light_ink)
    if panels is not None:
        lowered = busy & panels & (floor > PLAIN_LIGHT_FLOOR)
        panel_ink = lowered & (bright >= min_contrast) & (grey >= PLAIN_LIGHT_FLOOR)
    dark_ink = ((dark >= min_contrast) & (grey <= 105)) | ((dark >= faint_contrast) & at_ceiling)
    light = np.where(light_ink, bright, 0)
    coloured = chroma >= min_chroma
    light = np.maximum(light, np.where(coloured, np.maximum(chroma, bright), 0))
    contrast = np.maximum(grey - floor, ceiling - grey)
    return [
        np.clip(light, 0, 255).astype(np.uint8),
        np.clip(np.where(dark_ink, dark, 0), 0, 255).astype(np.uint8),
        np.clip(contrast, 0, 255).astype(np.uint8),
        np.clip(np.where(panel_ink, np.maximum(light, bright), light), 0, 255).astype(np.uint8),
    ]


def busy_light_floor(grey: np.ndarray, plain: np.ndarray) -> int:
    """How bright light ink must be over the busy areas of a frame (`grey` its strongest
    channel): brighter than almost all of the image content."""
    busy = ~plain
    if not busy.any():
        return 150
    return max(150, min(240, int(np.percentile(grey[busy], 99.5))))


def frame_light_floor(image: np.ndarray) -> int:
    """`busy_light_floor` of a whole display frame: a part of the frame read alone is held
    to the frame's own floor, so it finds the ink the whole frame's reading would."""
    grey = grey_of(image)
    return busy_light_floor(grey, plain_zone(flat_pixels(grey)))


# One floor for a whole frame is set by its brightest content: on a scanned film of
# twelve CT panels, the white skulls (214 of 255) put it above the blurred, lossy text
# printed beside them (peaking at 203-205), which then shows as broken strokes and is not
# read. Around that text the film is mostly black: in such dark neighbourhoods light ink
# only needs the floor of plain areas. The window is wider than a block of text (so the
# text's own strokes cannot make it "bright"), narrower than a panel.
PANEL_WINDOW = 129
PANEL_DARK_LEVEL = 40
PANEL_DARK_SHARE = 0.75
PLAIN_LIGHT_FLOOR = 150
# A line found that way must look like text on black: not taller than a line of annotation
# (SC1's are 14-22 px), wider than tall, on a background (its box's median) near black.
PANEL_LINE_MAX_PX = 32
PANEL_TEXT_BACKGROUND = 16


def dark_panels(image: np.ndarray) -> np.ndarray:
    """Pixels whose neighbourhood (PANEL_WINDOW square) is mostly near black: there light
    ink is held to PLAIN_LIGHT_FLOOR, not to the frame's busy floor. Computed on a whole
    frame; a part of it read alone is given its slice, so it finds the same ink."""
    dark = (grey_of(image) <= PANEL_DARK_LEVEL).astype(np.float32)
    share = ndi.uniform_filter(dark, size=PANEL_WINDOW)
    return share >= PANEL_DARK_SHARE  # type: ignore[no-any-return]


# Over image content, text drawn in one flat colour shows as a spike in the local
# histogram: many pixels of exactly one value where the image's own values are spread.
DRAWN_TILE = 64
DRAWN_MIN_PIXELS = 12
DRAWN_SPIKE_RATIO = 4
DRAWN_LAYER = 2  # index of the flat-colour layer in Ink.layers


def drawn_colour_ink(grey: np.ndarray, busy: np.ndarray) -> np.ndarray:
    """Pixels over busy areas whose exact value is a local histogram spike (text drawn in
    a flat grey or colour over speckle or anatomy, which contrast alone cannot separate).
    Black and white are left out: saturated speckle piles up there, and white text is
    found by contrast anyway. Lossy compression blurs the spikes: then contrast decides."""
    found = np.zeros(grey.shape, dtype=bool)
    rows, columns = grey.shape
    stride = DRAWN_TILE // 2
    areas: list[tuple[slice, slice]] = []
    histograms: list[np.ndarray] = []
    for y in range(0, max(1, rows - stride), stride):
        for x in range(0, max(1, columns - stride), stride):
            area = (slice(y, y + DRAWN_TILE), slice(x, x + DRAWN_TILE))
            inside = busy[area]
            if inside.mean() < 0.5:
                continue
            areas.append(area)
            histograms.append(np.bincount(grey[area][inside], minlength=256))
    # The tiles' histograms are smoothed together, row by row, as one call per tile did
    # (tiles of one length at a time: values above 255 lengthen a tile's histogram).
    for length in {len(h) for h in histograms}:
        chosen = [i for i, h in enumerate(histograms) if len(h) == length]
        counts = np.stack([histograms[i] for i in chosen])
        baseline = ndi.median_filter(counts, size=(1, 9))
        spikes = (counts >= DRAWN_MIN_PIXELS) & (counts >= DRAWN_SPIKE_RATIO * baseline + 10)
        spikes[:, :30] = False
        spikes[:, 255] = False
        for i, tile_spikes in zip(chosen, spikes, strict=True):
            if tile_spikes.any():
                area = areas[i]
                found[area] |= tile_spikes[grey[area]] & busy[area]
    return found


def resolve_polarity(
    grey: np.ndarray, light: np.ndarray, dark: np.ndarray, min_contrast: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per text line, keep light ink brighter than the line's background and dark ink
    darker than it: the gaps inside white letters on black (or black letters on grey)
    sit at the background level and are dropped, so letters are not merged into blocks."""
    light, dark = light.copy(), dark.copy()
    rows, columns = grey.shape
    step = max(10, min_contrast // 4)
    for band in text_bands(light | dark):
        box = (
            slice(max(0, band[0].start - 6), min(rows, band[0].stop + 6)),
            slice(max(0, band[1].start - 6), min(columns, band[1].stop + 6)),
        )
        # The background is what most of the padded box shows: text covers less of it.
        level = float(np.median(grey[box]))
        light[box] &= grey[box] >= level + step
        dark[box] &= grey[box] <= level - step
    return light, dark


def grey_of(image: np.ndarray) -> np.ndarray:
    """Brightness for text detection: coloured text is bright in its strongest channel."""
    if image.ndim == 3:
        return np.maximum(np.maximum(image[..., 0], image[..., 1]), image[..., 2])
    return image


def plain_zone(flat: np.ndarray) -> np.ndarray:
    """Where the frame is mostly uniform: borders, header bars, panels, paper.

    Text there is grouped apart from text-like specks of the image content next to it, so a
    sector edge full of bright speckle cannot swallow the header line beside it.
    """
    return ndi.uniform_filter(flat.astype(np.float32), size=41) >= 0.5  # type: ignore[no-any-return]


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


def text_bands(candidates: np.ndarray) -> list[tuple[slice, slice]]:
    """Bounding boxes of text lines: candidate ink grouped along the writing direction."""
    lines = dilate(candidates, 3, 15)
    labels, count = ndi.label(lines)
    # The extent of the ink itself, not of the dilation (which would widen every band).
    inked = np.where(candidates, labels, 0)
    return [b for b in ndi.find_objects(inked)[:count] if b is not None]


@dataclass(frozen=True)
class Ink:
    """What a frame shows that may be text: (ink, candidates) per polarity, and its zones."""

    layers: list[tuple[np.ndarray, np.ndarray]]
    plain: np.ndarray
    flat: np.ndarray

    @property
    def candidates(self) -> np.ndarray:
        return np.logical_or.reduce([c for _, c in self.layers])  # type: ignore[no-any-return]


def find_ink(
    image: np.ndarray,
    *,
    min_contrast: int,
    min_chroma: int,
    light_floor: int | None = None,
    panels: np.ndarray | None = None,
) -> Ink:
    """Text-like ink of a frame: cheap (no OCR), also used to decide which frames to read.
    `light_floor` and `panels`, when given, replace the image's own `busy_light_floor` and
    `dark_panels` (a part of a frame read alone gets the whole frame's)."""
    grey = grey_of(image)
    flat = flat_pixels(grey)
    plain = plain_zone(flat)
    if light_floor is None:
        light_floor = busy_light_floor(grey, plain)
    if panels is None and light_floor > PLAIN_LIGHT_FLOOR:
        panels = dark_panels(image)
    light, dark, contrast, panel_light = ink_layers(
        image, min_contrast, min_chroma, plain, light_floor, panels
    )
    light_c, dark_c = resolve_polarity(
        grey, text_candidates(light, plain), text_candidates(dark, plain), min_contrast
    )
    # Flat-coloured text over the image: its exact-colour pixels are the skeleton; the
    # page shows the local contrast around them, so anti-aliased strokes read whole.
    drawn_core = drawn_colour_ink(grey, ~plain)
    drawn_c = text_candidates(np.where(dilate(drawn_core, 3, 3), 255, 0), plain)
    drawn_c &= ~light_c & ~dark_c
    layers = [(light, light_c), (dark, dark_c), (contrast, drawn_c)]
    panel = _panel_candidates(grey, panel_light, light, light_c, plain, min_contrast)
    if panel is not None:
        layers.append((panel_light, panel[0]))
        plain = plain | panel[1]
    return Ink(layers, plain, flat)


def _panel_candidates(
    grey: np.ndarray,
    panel_light: np.ndarray,
    light: np.ndarray,
    light_c: np.ndarray,
    plain: np.ndarray,
    min_contrast: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The text lines of the panel layer that hold ink the light layer lacks (its own
    lines are read there already), and the boxes of those written on near black: a
    horizontal band at most PANEL_LINE_MAX_PX tall whose padded box is mostly at
    PANEL_TEXT_BACKGROUND or below. Those boxes then count as plain area (text on a black
    panel: its words trusted, its unread lines masked). Bone edges and air in a skull, also
    bright on dark, fail that test (their boxes hold grey tissue) and are read as lines
    over the image: masked when read confidently, as there. None when nothing is new."""
    if not (panel_light > light).any():
        return None
    found, _ = resolve_polarity(
        grey, text_candidates(panel_light, plain), np.zeros_like(light_c), min_contrast
    )
    new = found & ~light_c
    if not new.any():
        return None
    rows, columns = grey.shape
    kept = np.zeros_like(found)
    boxes = np.zeros_like(found)
    for band in text_bands(found):
        if not new[band].any():
            continue
        kept[band] |= found[band]
        height = band[0].stop - band[0].start
        width = band[1].stop - band[1].start
        box = (
            slice(max(0, band[0].start - 6), min(rows, band[0].stop + 6)),
            slice(max(0, band[1].start - 6), min(columns, band[1].stop + 6)),
        )
        if (
            height <= PANEL_LINE_MAX_PX
            and width >= height
            and np.median(grey[box]) <= PANEL_TEXT_BACKGROUND
        ):
            boxes[box] = True
    return (kept, boxes) if kept.any() else None


Region = tuple[slice, slice]
# What a pixel's ink depends on around it: the widest window of the ink filters (the
# plain-zone test, 41 px) with some room. A part of a frame read alone is grown by this
# much, so its ink inside the part is what the whole frame's reading would find there.
REGION_PAD = 48


def changed_region(image: np.ndarray, reference: np.ndarray) -> Region | None:
    """The part of `image` that differs from `reference` at all (exact comparison: faint
    text differs by little), grown by REGION_PAD; None when the two are equal. Outside
    it the two frames are the same pixels, so a reading of `reference` there holds for
    `image` too."""
    differing = image != reference
    if differing.ndim == 3:
        differing = differing.any(axis=2)
    rows = np.flatnonzero(differing.any(axis=1))
    if rows.size == 0:
        return None
    columns = np.flatnonzero(differing.any(axis=0))
    height, width = differing.shape
    return (
        slice(max(0, int(rows[0]) - REGION_PAD), min(height, int(rows[-1]) + REGION_PAD + 1)),
        slice(
            max(0, int(columns[0]) - REGION_PAD), min(width, int(columns[-1]) + REGION_PAD + 1)
        ),
    )


def region_area(region: Region) -> int:
    return (region[0].stop - region[0].start) * (region[1].stop - region[1].start)


def embed(ink: Ink, region: Region, shape: tuple[int, int]) -> Ink:
    """`ink` found in `region` of a frame, placed in a frame of `shape`: no ink outside
    the region, and its surroundings count as flat there (a line of unread ink at the
    region's edge is then masked, not spared)."""

    def placed(layer: np.ndarray, outside: bool = False) -> np.ndarray:
        full = np.full(shape, outside, dtype=layer.dtype)
        full[region] = layer
        return full

    return Ink(
        [(placed(strength), placed(found)) for strength, found in ink.layers],
        placed(ink.plain),
        placed(ink.flat, outside=True),
    )
