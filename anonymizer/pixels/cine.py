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

from .ink import Ink, Region, changed_region, dilate, grey_of, region_area, text_bands

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
EXTRA_EXTREME_PIXELS = 25
# Pixels of an unchanging speck enclosed by the live image that count as live image: less
# than one small glyph (a 15x31 window holds a word's letter with room around it).
LIVE_SPECK_PIXELS = 120
# Read frames a frame is compared with, nearest first: a loop whose text changes on every
# frame would otherwise be compared with every frame read before it.
COMPARED_READINGS = 4


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
    """A frame OCR read: its picture, its text strokes and bands, what its reading masks."""

    index: int
    image: np.ndarray
    strokes: np.ndarray
    bands: np.ndarray
    mask: np.ndarray

    @classmethod
    def of(cls, index: int, image: np.ndarray, ink: Ink, mask: np.ndarray) -> _Reading:
        # Over the moving image, text-like specks that OCR did not take for text change
        # on every frame: only what the reading masks is compared there.
        text = ink.candidates & (ink.plain | mask)
        # The strokes with their anti-aliased rim: a different glyph changes some of them.
        strokes = dilate(text, 3, 3)
        bands = np.zeros(strokes.shape, dtype=bool)
        for rows, columns in text_bands(text):
            bands[rows, columns] = True
        return cls(index, image, strokes, dilate(bands, 9, 9), mask)

    def beside(self, reference: _Reading, region: Region) -> _Reading:
        """This reading of `region` alone, completed outside it by `reference`'s (whose
        frame shows the same pixels there)."""
        inside = np.zeros(self.strokes.shape, dtype=bool)
        inside[region] = True
        return _Reading(
            self.index,
            self.image,
            np.where(inside, self.strokes, reference.strokes),
            np.where(inside, self.bands, reference.bands),
            self.mask | reference.mask,
        )


@dataclass(frozen=True)
class FrameMasks:
    """One mask per frame (a single one when all frames share it) and the frames read."""

    masks: list[np.ndarray]
    read: list[int]


def frame_masks(
    count: int,
    image_of: Callable[[int], np.ndarray],
    find: Callable[[np.ndarray], Ink],
    read: Callable[[Ink], np.ndarray],
    samples: int,
    min_chroma: int,
    find_region: Callable[[np.ndarray, Region], Ink] | None = None,
) -> FrameMasks:
    """Masks for all `count` frames: `find` gives a frame's ink (cheap), `read` the mask
    its OCR'd text gives (the cost). OCR reads the sampled frames and each frame whose
    text areas differ from the frames read before it.

    `find_region`, when given, finds the ink of one part of a frame (as the whole frame's
    reading would there): a frame that differs from a frame already read only in a part
    (a live image between still borders and bands) is read in that part alone, the
    reading of the other frame holding for the rest, pixel for pixel the same."""
    sampled = sample_indices(count, samples)
    readings: list[_Reading] = []
    read_frames: list[int] = []

    def reading_of(index: int, image: np.ndarray, extra: np.ndarray | None) -> _Reading:
        best: tuple[int, _Reading, Region] | None = None
        if find_region is not None:
            for other in readings:
                region = changed_region(image, other.image)
                if region is not None and (best is None or region_area(region) < best[0]):
                    best = (region_area(region), other, region)
        if best is not None and best[0] < image.shape[0] * image.shape[1]:
            assert find_region is not None
            _, reference, region = best
            ink = find_region(image, region)
            mask = read(ink) if extra is None else extra | read(ink)
            return _Reading.of(index, image, ink, mask).beside(reference, region)
        ink = find(image)
        mask = read(ink) if extra is None else extra | read(ink)
        return _Reading.of(index, image, ink, mask)

    for index in sampled:
        image = image_of(index)
        # A sampled frame equal, pixel for pixel, to one read before (a still loop) would
        # be read the same: its reading is that frame's.
        same = next((r for r in readings if np.array_equal(r.image, image)), None)
        if same is not None:
            readings.append(_Reading(index, image, same.strokes, same.bands, same.mask))
            continue
        readings.append(reading_of(index, image, None))
        read_frames.append(index)
    union = np.logical_or.reduce([r.mask for r in readings])
    # Text read on any sampled frame is masked on every frame (a banner that blinks).
    readings = [_Reading(r.index, r.image, r.strokes, r.bands, union) for r in readings]
    if count == 1:
        return FrameMasks([union], read_frames)
    live = live_area(count, image_of)
    static = ~live
    unmasked_live = live & ~union
    extreme_limit = EXTRA_EXTREME_PIXELS + 2 * max(
        _extreme_count(r.image, unmasked_live, min_chroma) for r in readings
    )
    masks: list[np.ndarray] = [union] * count
    for index in range(count):
        if index in sampled:
            continue
        image = image_of(index)
        nearest = sorted(readings, key=lambda r: abs(r.index - index))[:COMPARED_READINGS]
        match = next((r for r in nearest if _same_text(image, r, static, find)), None)
        if match is not None and (
            _extreme_count(image, unmasked_live, min_chroma) > extreme_limit
        ):
            match = None
        if match is None:
            match = reading_of(index, image, union)
            readings.append(match)
            read_frames.append(index)
        masks[index] = match.mask
    if all(m is union for m in masks):
        return FrameMasks([union], read_frames)
    return FrameMasks(masks, read_frames)


def _same_text(
    image: np.ndarray, reading: _Reading, static: np.ndarray, find: Callable[[np.ndarray], Ink]
) -> bool:
    """Whether `image` shows the text `reading`'s frame showed. A difference in a text band
    of the read frame means other text; elsewhere on the static parts (an ECG trace that
    sweeps, a cursor) it counts when the ink there is text-like."""
    differing = differences(image, reading, static)
    if differing is None:
        return True
    if (differing & reading.bands).any():
        return False
    rows, columns = np.nonzero(differing)
    pad = 48  # the ink filters' reach, so the crop is judged as in the whole frame
    top, bottom = max(0, int(rows.min()) - pad), int(rows.max()) + pad + 1
    left, right = max(0, int(columns.min()) - pad), int(columns.max()) + pad + 1
    crop = (slice(top, bottom), slice(left, right))
    if differing[crop].size > differing.size // 2:
        return False  # no cheaper than reading the frame
    candidates = find(image[crop]).candidates
    return not (candidates & dilate(differing[crop], 5, 5)).any()


def differences(image: np.ndarray, reading: _Reading, static: np.ndarray) -> np.ndarray | None:
    """Pixels where `image` differs from `reading`'s frame in glyph-sized clusters,
    wherever text can be: every static pixel and the strokes read over the moving image;
    None when there are none."""
    # In the images' own 8 bits, channel by channel: this runs on every frame of a loop.
    difference = np.maximum(image, reading.image) - np.minimum(image, reading.image)
    if difference.ndim == 3:
        r, g, b = difference[..., 0], difference[..., 1], difference[..., 2]
        difference = np.maximum(np.maximum(r, g), b)
    # Pixels the reading's mask covers are filled on this frame whatever they show (a
    # frame is given at least the mask of the frame it matches): only a difference the
    # mask leaves visible can be text left unread. This is what lets a live image under
    # masked strokes (colour Doppler that OCR read as words) match from frame to frame.
    differing = (difference > SAME_PIXEL_TOLERANCE) & (static | reading.strokes) & ~reading.mask
    if int(np.count_nonzero(differing)) <= DIFFERING_PIXELS:
        return None
    window = GLYPH_WINDOW[0] * GLYPH_WINDOW[1]
    density = ndi.uniform_filter(differing.astype(np.float32), size=GLYPH_WINDOW) * window
    clusters = density >= DIFFERING_PIXELS + 0.5
    if not clusters.any():
        return None
    return differing & dilate(clusters, *GLYPH_WINDOW)  # type: ignore[no-any-return]


def _extreme_count(image: np.ndarray, where: np.ndarray, min_chroma: int) -> int:
    # On the box around `where`, not on the pixels gathered by it: gathering a live image's
    # RGB pixels cost more than the test itself (this runs on every frame of a loop).
    rows = np.flatnonzero(where.any(axis=1))
    if rows.size == 0:
        return 0
    columns = np.flatnonzero(where.any(axis=0))
    box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(columns[0]), int(columns[-1]) + 1))
    pixels, inside = image[box], where[box]
    if pixels.ndim == 2:
        return int(np.count_nonzero((pixels >= EXTREME_GREY) & inside))
    # Channel by channel: a reduction along the 3-long colour axis is several times slower.
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    high = np.maximum(np.maximum(r, g), b)
    low = np.minimum(np.minimum(r, g), b)
    extreme = (high >= EXTREME_GREY) | ((high - low) >= min_chroma)
    return int(np.count_nonzero(extreme & inside))


def live_area(count: int, image_of: Callable[[int], np.ndarray]) -> np.ndarray:
    """The part of a cine that changes from frame to frame in broad areas (the live
    image), as opposed to static borders and overlays and thin moving text. All frames
    count: a heart that was still on the frames read moves on others."""
    first = grey_of(image_of(0))
    low, high = first.copy(), first.copy()
    for index in range(1, count):
        grey = grey_of(image_of(index))
        np.minimum(low, grey, out=low)
        np.maximum(high, grey, out=high)
    changing = ((high.astype(np.int16) - low) > 10).astype(np.float32)
    # Broad areas where most pixels change: thin moving strokes (text) change only a
    # fraction of their surroundings. Text read there is compared by its strokes anyway.
    # The margin takes in the speckle along the edge of the moving image.
    core = ndi.uniform_filter(changing, size=15) >= 0.5
    live = dilate(core, 9, 9)
    # Specks of the live image that happen not to change (a colour Doppler pixel that
    # stays saturated), enclosed by it and smaller than one glyph: part of the image,
    # not still text (a still word is larger and is compared as static).
    holes, count = ndi.label(ndi.binary_fill_holes(live) & ~live)
    if count:
        sizes = np.bincount(holes.ravel(), minlength=count + 1)
        small = sizes <= LIVE_SPECK_PIXELS
        small[0] = False
        live |= small[holes]
    return live  # type: ignore[no-any-return]
