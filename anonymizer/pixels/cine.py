"""Which frames of a multi-frame image OCR reads, and which reuse another frame's boxes.

Cine loops and XA runs repeat the same annotation bands on every frame, and OCR is the
cost of cleaning one (finding ink and reading it, a few tenths of a second a frame). So
the first, middle and last frames are read; every other frame is compared, pixel for
pixel, with those frames where text can be: the text bands found in them and every part
of the loop that does not move (borders, header bars, overlays). A frame equal there to a
read frame shows the same text, and gets that frame's boxes; any difference (a banner
that changes, text that appears, moves or is redrawn) makes it read on its own, and it
becomes a frame the next ones may match. Every frame is masked; none is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .ink import Ink, dilate, grey_of

# Display values (0-255) two frames may differ by and still show the same pixel: lossy
# compression redraws static areas a little differently from frame to frame.
SAME_PIXEL_TOLERANCE = 24
# Differing pixels within one glyph-sized window that make a frame different. Image
# content that hardly moves differs in scattered specks; a changed, added or moved glyph
# differs in a cluster (a changed digit of small text changes a dozen pixels or more).
DIFFERING_PIXELS = 8
GLYPH_WINDOW = (15, 31)
# Over the moving image every pixel changes, so there a frame is read on its own when it
# shows clearly more pixels at a drawing extreme (near white, or coloured) than any
# sampled frame: text drawn over the image, without finding its ink (the costly part).
EXTREME_GREY = 235
# Read frames a frame is compared with, nearest first: a loop whose text changes on every
# frame would otherwise be compared with every frame read before it.
COMPARED_READINGS = 4
EXTRA_EXTREME_PIXELS = 25


def sample_indices(count: int, wanted: int, *, shift: float = 0.0) -> list[int]:
    """`wanted` frame indices spread over `count` frames (first and last included)."""
    if count <= wanted:
        return list(range(count))
    points = np.linspace(0, count - 1, wanted)
    if shift:
        points = np.clip(points + shift * (count - 1) / max(1, wanted - 1), 0, count - 1)
    return sorted({int(round(p)) for p in points})


@dataclass(frozen=True)
class _Reading:
    """A frame OCR read: its picture, its text strokes and what its reading masks."""

    index: int
    image: np.ndarray
    strokes: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class FrameMasks:
    """One mask per frame (a single one when all frames share it) and the frames read."""

    masks: list[np.ndarray]
    read: list[int]


# Reads one frame: its ink (for the comparison) and the mask its OCR'd text gives.
ReadFrame = Callable[[np.ndarray], tuple[Ink, np.ndarray]]


def frame_masks(
    count: int,
    image_of: Callable[[int], np.ndarray],
    read: ReadFrame,
    samples: int,
    min_chroma: int,
) -> FrameMasks:
    """Masks for all `count` frames, with OCR on the sampled frames and on each frame
    whose text areas differ from every frame read before it."""
    sampled = sample_indices(count, samples)
    readings: list[_Reading] = []
    union: np.ndarray | None = None
    for index in sampled:
        image = image_of(index)
        ink, own = read(image)
        union = own.copy() if union is None else union | own
        readings.append(_Reading(index, image, _strokes(ink), own))
    assert union is not None  # count >= 1
    # Text read on any sampled frame is masked on every frame (a banner that blinks).
    readings = [_Reading(r.index, r.image, r.strokes, union) for r in readings]
    if count == 1:
        return FrameMasks([union], sampled)
    live = live_area([r.image for r in readings])
    static = ~live
    extreme_limit = EXTRA_EXTREME_PIXELS + 2 * max(
        _extreme_count(r.image, live & ~union, min_chroma) for r in readings
    )
    masks: list[np.ndarray] = [union] * count
    read_frames = list(sampled)
    for index in range(count):
        if index in sampled:
            continue
        image = image_of(index)
        nearest = sorted(readings, key=lambda r: abs(r.index - index))[:COMPARED_READINGS]
        match = next((r for r in nearest if same_text_areas(image, r, static)), None)
        if match is not None and (
            _extreme_count(image, live & ~union, min_chroma) > extreme_limit
        ):
            match = None
        if match is None:
            ink, own = read(image)
            match = _Reading(index, image, _strokes(ink), union | own)
            readings.append(match)
            read_frames.append(index)
        masks[index] = match.mask
    if all(m is union for m in masks):
        return FrameMasks([union], read_frames)
    return FrameMasks(masks, read_frames)


def _strokes(ink: Ink) -> np.ndarray:
    # The strokes with their anti-aliased rim: a different glyph changes some of them.
    return dilate(ink.candidates, 3, 3)


def same_text_areas(image: np.ndarray, reading: _Reading, static: np.ndarray) -> bool:
    """Whether `image` shows what `reading`'s frame showed wherever text can be: every
    static pixel (bands on borders and bars, and any place new text could appear there)
    and the text strokes read over the moving image."""
    if image.shape != reading.image.shape:
        return False
    difference = np.abs(image.astype(np.int16) - reading.image.astype(np.int16))
    if difference.ndim == 3:
        difference = difference.max(axis=2)
    differing = (difference > SAME_PIXEL_TOLERANCE) & (static | reading.strokes)
    if int(np.count_nonzero(differing)) <= DIFFERING_PIXELS:
        return True
    window = GLYPH_WINDOW[0] * GLYPH_WINDOW[1]
    density = ndi.uniform_filter(differing.astype(np.float32), size=GLYPH_WINDOW)
    return float(density.max()) * window < DIFFERING_PIXELS + 0.5


def _extreme_count(image: np.ndarray, where: np.ndarray, min_chroma: int) -> int:
    extreme = grey_of(image) >= EXTREME_GREY
    if image.ndim == 3:
        chroma = image.max(axis=2).astype(np.int16) - image.min(axis=2)
        extreme |= chroma >= min_chroma
    return int(np.count_nonzero(extreme & where))


def live_area(images: list[np.ndarray]) -> np.ndarray:
    """The part of a cine that changes from frame to frame in broad areas (the live
    image), as opposed to static borders and overlays and thin moving text."""
    stack = np.stack([grey_of(i) for i in images]).astype(np.int16)
    changing = ((stack.max(axis=0) - stack.min(axis=0)) > 10).astype(np.float32)
    # Broad areas where most pixels change; thin moving strokes (text) change only a
    # fraction of their surroundings. The margin takes in the speckle along the edge.
    core = ndi.uniform_filter(changing, size=15) >= 0.5
    return dilate(core, 9, 9)
