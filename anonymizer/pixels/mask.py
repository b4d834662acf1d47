"""Masks: which pixels of a frame are filled, built from rule rectangles or OCR words."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from . import verify
from .allowlist import EMPTY, AllowList, looks_identifying
from .ocr import FrameText, Word, dilate
from .policy import TextMode
from .rules import Rect


def rect_mask(
    shape: tuple[int, int], rects: Iterable[Rect], keep: Iterable[Rect] = ()
) -> np.ndarray:
    rows, columns = shape
    mask = np.zeros(shape, dtype=bool)
    for x, y, w, h in rects:
        mask[max(0, y) : min(rows, y + h), max(0, x) : min(columns, x + w)] = True
    for x, y, w, h in keep:
        mask[max(0, y) : min(rows, y + h), max(0, x) : min(columns, x + w)] = False
    return mask


# Over image content (speckle, anatomy) tesseract reads garbage "words", short and with
# low confidence; there a word is masked when it is confident, or long and fairly
# confident, or matches an identifying value.
BUSY_MIN_CONFIDENCE = 60.0
BUSY_LONG_WORD = 4
BUSY_LONG_MIN_CONFIDENCE = 45.0


@dataclass(frozen=True)
class WordDecision:
    """What decides which read words are masked in one instance."""

    secrets: frozenset[str] = frozenset()  # verify.identifying_tokens of the instance
    allow: AllowList = EMPTY
    mode: TextMode = "all"
    # Allow-listed words detection left in place, gathered over the frames it read:
    # verification does not count its own misreadings of them ("PUR" for "PWR").
    kept: list[Word] = field(default_factory=list)

    def kept_area(self, shape: tuple[int, int], margin: int) -> np.ndarray:
        return _boxes(self.kept, shape, margin)


def _is_text(word: Word, secrets: Collection[str]) -> bool:
    if not word.busy:
        return True
    if secrets and verify.residual_matches([word], (), secret_tokens=secrets):
        return True
    alnum = sum(1 for ch in word.text if ch.isalnum())
    if alnum >= BUSY_LONG_WORD and word.confidence >= BUSY_LONG_MIN_CONFIDENCE:
        return True
    return word.confidence >= BUSY_MIN_CONFIDENCE and alnum >= 2


def decide(
    words: Sequence[Word],
    secrets: Collection[str] = (),
    allow: AllowList | None = None,
    mode: TextMode = "all",
) -> tuple[list[Word], list[Word]]:
    """(words to mask, allow-listed words that stay) among the words OCR read.

    "all": every word is masked unless the allow-list accepts it in its line; a word
    matching an identifying value is masked even if listed (a patient may be called
    "Gain"). "sensitive": only identifying values and date, time or ID shapes.
    """
    real = [w for w in words if _is_text(w, secrets)]
    identifying = [
        bool(secrets) and verify.residual_matches([w], (), secret_tokens=secrets) > 0 for w in real
    ]
    if mode == "sensitive":
        chosen = [
            w for w, hit in zip(real, identifying, strict=True) if hit or looks_identifying(w.text)
        ]
        return chosen, []
    verdicts = (allow or EMPTY).allowed(real)
    masked: list[Word] = []
    kept: list[Word] = []
    for word, hit, ok in zip(real, identifying, verdicts, strict=True):
        (kept if ok and not hit and read_whole(word) else masked).append(word)
    return masked, kept


def read_whole(word: Word) -> bool:
    """Whether the word's box is no wider than its characters can be: a letter or digit
    is at most about as wide as it is tall. Tesseract sometimes reads a blurred word as a
    character or two ("5" over a whole word of a scanned film) and gives the box of the
    word: such a reading says nothing of what is there, and is not kept."""
    characters = sum(1 for ch in word.text if ch.isalnum())
    return word.width <= (characters + 1) * word.height


def _boxes(words: Iterable[Word], shape: tuple[int, int], margin: int) -> np.ndarray:
    rows, columns = shape
    mask = np.zeros(shape, dtype=bool)
    for word in words:
        mask[
            max(0, word.y - margin) : min(rows, word.y + word.height + margin),
            max(0, word.x - margin) : min(columns, word.x + word.width + margin),
        ] = True
    return mask


def word_mask(
    text: FrameText,
    shape: tuple[int, int],
    margin: int,
    secrets: Collection[str] = (),
    *,
    allow: AllowList | None = None,
    mode: TextMode = "all",
    decided: tuple[list[Word], list[Word]] | None = None,
) -> np.ndarray:
    """Every word to mask grown by `margin`, plus the whole line of ink it belongs to.

    Tesseract's word boxes are tight and sometimes leave out a diacritic, a dot or a
    glyph it could not read; the ink shapes near a word are filled with it, so a line
    with one word off the allow-list is masked whole. `secrets` are the instance's
    identifying tokens (verify.identifying_tokens). `decided`, when given, is what
    `decide` gives for these words and settings (the caller's, not computed again).
    """
    rows, columns = shape
    words, _ = decided or decide(text.words, secrets, allow, mode)
    if not words:
        return np.zeros(shape, dtype=bool)
    mask = _boxes(words, shape, margin)
    # Ink shapes close together (one text line) form a group; groups touched by a word
    # are filled as a whole.
    lines = dilate(text.candidates, 3, 21)
    labels, count = ndi.label(lines)
    if count:
        touched = np.unique(labels[mask & lines])
        touched = touched[touched != 0]
        if touched.size:
            objects = ndi.find_objects(labels)
            for index in touched:
                box = objects[int(index) - 1]
                if box is None:
                    continue
                mask[
                    max(0, box[0].start - margin) : min(rows, box[0].stop + margin),
                    max(0, box[1].start - margin) : min(columns, box[1].stop + margin),
                ] = True
    return mask


# A line of unread ink on a plain area is masked when it looks like writing: several
# glyph-sized shapes in a band of text height.
UNREAD_MIN_SHAPES = 2
UNREAD_HEIGHT_PX = (5, 48)
# ... and when what surrounds the line (ink aside) is flat: writing sits on a flat border,
# while specks along the edge of an image have the image beside them.
UNREAD_FLAT_SURROUNDINGS = 0.9


def unread_lines(text: FrameText, covered: np.ndarray, margin: int) -> np.ndarray:
    """Lines of text-like ink on plain areas that no read word touched.

    On borders, header bars and paper, ink that lines up like writing is text (or a
    logo) even when OCR cannot read it: a font it does not know, a damaged scan. Masking
    it costs no image content.
    """
    shape = covered.shape
    rows, columns = shape
    result = np.zeros(shape, dtype=bool)
    if text.plain is None:
        return result
    ink = text.candidates & text.plain & ~covered
    if not ink.any():
        return result
    lines, count = ndi.label(dilate(ink, 3, 9))
    shapes, _ = ndi.label(ink)
    for index, box in enumerate(ndi.find_objects(lines)[:count], start=1):
        if box is None:
            continue
        height = box[0].stop - box[0].start
        width = box[1].stop - box[1].start
        if not (UNREAD_HEIGHT_PX[0] <= height <= UNREAD_HEIGHT_PX[1]) or width < height:
            continue
        members = np.unique(shapes[box][(lines[box] == index) & ink[box]])
        if np.count_nonzero(members) < UNREAD_MIN_SHAPES:
            continue
        if text.flat is not None and not _flat_ring(text.flat, box, rows, columns):
            continue
        result[
            max(0, box[0].start - margin) : min(rows, box[0].stop + margin),
            max(0, box[1].start - margin) : min(columns, box[1].stop + margin),
        ] = True
    return result


def _flat_ring(flat: np.ndarray, box: tuple[slice, slice], rows: int, columns: int) -> bool:
    """Whether the frame is uniform just outside a line's box (from 3 to 8 pixels out)."""
    outer = flat[
        max(0, box[0].start - 8) : min(rows, box[0].stop + 8),
        max(0, box[1].start - 8) : min(columns, box[1].stop + 8),
    ]
    inner = np.zeros(outer.shape, dtype=bool)
    top, left = min(8, box[0].start), min(8, box[1].start)
    height, width = box[0].stop - box[0].start, box[1].stop - box[1].start
    inner[max(0, top - 3) : top + height + 3, max(0, left - 3) : left + width + 3] = True
    ring = outer[~inner]
    return bool(ring.size) and float(ring.mean()) >= UNREAD_FLAT_SURROUNDINGS


def text_mask(
    text: FrameText,
    shape: tuple[int, int],
    margin: int,
    secrets: Collection[str] = (),
    *,
    unread_lines_too: bool = True,
    allow: AllowList | None = None,
    mode: TextMode = "all",
    decided: tuple[list[Word], list[Word]] | None = None,
) -> np.ndarray:
    """What to fill for the text OCR saw: its words, and optionally unread lines.
    `decided`: `decide`'s result for these words and settings, when the caller has it
    (matching every word against the identifying values is not cheap)."""
    decided = decided or decide(text.words, secrets, allow, mode)
    words = word_mask(text, shape, margin, secrets, allow=allow, mode=mode, decided=decided)
    if unread_lines_too:
        # Allow-listed words are read text, not unread ink: only the ink around them is
        # judged as a line of its own.
        _, kept = decided
        words |= unread_lines(text, words | _boxes(kept, shape, 1), margin)
    return words


def boxes_of(mask: np.ndarray) -> list[Rect]:
    """The bounding rectangles of the filled areas, for previews and action codes."""
    labels, count = ndi.label(mask)
    rects: list[Rect] = []
    for box in ndi.find_objects(labels)[:count]:
        if box is None:
            continue
        rects.append(
            (box[1].start, box[0].start, box[1].stop - box[1].start, box[0].stop - box[0].start)
        )
    return rects


def fill_value(
    array: np.ndarray, photometric: str, palette: np.ndarray | None = None
) -> int | float:
    """The darkest displayed value: text vanishes into black."""
    if palette is not None:
        return int(np.argmin(palette.astype(np.int32).sum(axis=1)))
    if photometric == "MONOCHROME1":
        return array.max()  # type: ignore[no-any-return]
    if array.ndim == 4 or photometric.startswith(("RGB", "YBR", "PALETTE")):
        return 0
    return array.min()  # type: ignore[no-any-return]


def apply(array: np.ndarray, masks: list[np.ndarray], value: int | float) -> None:
    """Fill `masks[i]` in frame i (one mask for all frames when a single one is given)."""
    if len(masks) == 1:
        # One mask for every frame of a cine: fill all frames at once, box by box around
        # each run of rows the mask touches (frame by frame, boolean indexing cost 2 ms a
        # 640x480 frame; one box around a header and a footer spans the whole frame).
        fill = np.asarray(value, dtype=array.dtype)
        for top, bottom in _row_runs(masks[0]):
            columns = np.flatnonzero(masks[0][top:bottom].any(axis=0))
            left, right = int(columns[0]), int(columns[-1]) + 1
            where = masks[0][top:bottom, left:right]
            where = where[np.newaxis, :, :, np.newaxis] if array.ndim == 4 else where[np.newaxis]
            np.copyto(array[:, top:bottom, left:right], fill, where=where)
        return
    for index in range(array.shape[0]):
        mask = masks[index]
        if mask.any():
            array[index][mask] = value


def _row_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(top, bottom) of each run of consecutive rows holding a masked pixel."""
    rows = mask.any(axis=1).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], rows, [0]))))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
