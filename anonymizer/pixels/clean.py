"""Applying a pixel policy to one instance (the body of `clean_pixels`).

Kept apart from the package's __init__ so that loading a profile (which validates its
`pixel:` section) does not import numpy, scipy and the OCR engine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field, replace

import numpy as np
from pydicom.dataset import Dataset

from anonymizer.errors import QuarantineError, QuarantineReason

from . import cine, codec, ink, mask, ocr, overlays, reread, verify
from .allowlist import allowlist_for
from .cine import sample_indices
from .policy import OcrSettings, PixelPolicy
from .rules import RuleSet, rule_rects, rules_for
from .sampling import (
    SCREENED_CLEAN,
    SCREENED_NO_INK,
    SCREENED_TEXT,
    SERIES_SAMPLE,
    SERIES_TEXT,
    PixelMode,
)
from .selection import embedded_overlay, examination_reason
from .trace import PixelTrace, RereadFinding, WordFate


@dataclass
class PixelResult:
    """What happened to one instance."""

    actions: list[str] = field(default_factory=list)
    # Frames OCR read to find text, in reading order (verification not counted): what a
    # cine costs, since reading is most of it.
    ocr_frames: list[int] = field(default_factory=list)

    @property
    def ocr_reads(self) -> int:
        return len(self.ocr_frames)


def run(
    original: Dataset | None,
    output: Dataset,
    policy: PixelPolicy,
    identifying_values: Collection[str],
    *,
    trace: PixelTrace | None = None,
    mode: PixelMode = PixelMode.AUTO,
) -> PixelResult:
    """`trace`, when given, records what was seen and decided (steward previews)."""
    result = PixelResult()
    _remove_side_channels(output, policy, identifying_values, result.actions)
    # No original: the caller already found that the image is not examined, and the device
    # rules need not be looked up again.
    if original is None:
        result.actions.insert(0, "not_examined")
        return result
    rules = rules_for(policy)
    reason = examination_reason(original, policy, rules)
    # A mode adds examination to what the header decided, never takes it away.
    screening = reason is None and mode is PixelMode.SCREEN
    if reason is None and mode is not PixelMode.AUTO:
        reason = SERIES_SAMPLE if screening else SERIES_TEXT
    if reason is None:
        result.actions.insert(0, "not_examined")
        return result
    result.actions.insert(0, f"examined:{reason}")

    frames = codec.decode(output, policy.max_decoded_mb * 2**20)
    if screening and not _ink_present(frames, policy.ocr):
        # Nothing text-like even at verification's lower thresholds: OCR, which reads
        # only ink, would have nothing to read. The pixels stay as received.
        result.actions += [SCREENED_CLEAN, SCREENED_NO_INK, "pixels_unchanged"]
        return result
    if trace is not None:
        trace.examined = True
        trace.before = _copy(frames)
    changed = False
    if embedded_overlay(original) and not frames.is_color:
        # Overlay bits above Bits Stored are part of the stored values: clear them.
        frames.array &= np.array((1 << frames.bits_stored) - 1).astype(frames.array.dtype)
        changed = True
        result.actions.append("embedded_overlay_cleared")

    read_alone: set[int] = set()
    kept_area = np.zeros((frames.rows, frames.columns), dtype=bool)
    masks, rule_actions = _rule_masks(original, frames, rules, trace)
    result.actions.extend(rule_actions)
    if not masks or policy.ocr_after_rule:
        if not policy.ocr.enabled:
            if not masks:
                raise QuarantineError(
                    QuarantineReason.PIXEL_POLICY,
                    "image must be examined, no device rule matches and OCR is disabled",
                )
        else:
            secrets = mask.WordDecision(
                frozenset(verify.identifying_tokens(identifying_values)),
                allowlist_for(policy),
                policy.text,
            )
            ocr_masks, count, read = _ocr_masks(frames, policy.ocr, secrets, trace)
            result.actions.append(f"ocr_mask:{count}_boxes")
            result.ocr_frames = list(read)
            kept_area = secrets.kept_area(kept_area.shape, policy.ocr.margin)
            # Frames that needed their own reading are verified too.
            sampled = sample_indices(frames.count, policy.ocr.sample_frames)
            read_alone = set(read) - set(sampled)
            masks = _merge(masks, ocr_masks)

    if screening:
        found = bool(masks) and any(m.any() for m in masks)
        result.actions.append(SCREENED_TEXT if found else SCREENED_CLEAN)
    if masks and any(m.any() for m in masks):
        fill = mask.fill_value(frames.array, frames.photometric, frames.palette)
        mask.apply(frames.array, masks, fill)
        changed = True
    if trace is not None:
        trace.masks = masks
        trace.masked = frames

    if policy.verify and policy.ocr.enabled:
        _verify(frames, policy, original, identifying_values, read_alone, kept_area, trace)
        result.actions.append("verified")
        output.BurnedInAnnotation = "NO"
    else:
        result.actions.append("unverified")

    if changed:
        syntax = codec.encode(output, frames, policy.reencode_as)
        result.actions.append(f"reencoded:{syntax}")
    else:
        result.actions.append("pixels_unchanged")
    return result


def _copy(frames: codec.Frames) -> codec.Frames:
    return codec.Frames(frames.array.copy(), frames.photometric, frames.bits_stored, frames.palette)


def _remove_side_channels(
    output: Dataset, policy: PixelPolicy, values: Collection[str], actions: list[str]
) -> None:
    """Overlay planes and icon thumbnails can carry text or a copy of the image."""
    actions.extend(overlays.handle(output, policy, values))
    if policy.remove_icon_images and "IconImageSequence" in output:
        del output.IconImageSequence
        actions.append("icon_removed")


def _ink_present(frames: codec.Frames, settings: OcrSettings) -> bool:
    """The cheap text-presence test of a screened slice: text-like ink (ink.py) in any
    frame OCR would sample, looked for at verification's lower thresholds."""
    for index in sample_indices(frames.count, settings.sample_frames):
        found = ocr.find_ink(
            display_frame(frames, index),
            min_contrast=settings.verify_min_contrast,
            min_chroma=settings.verify_min_chroma,
        )
        if found.candidates.any():
            return True
    return False


def _rule_masks(
    original: Dataset, frames: codec.Frames, rules: RuleSet, trace: PixelTrace | None
) -> tuple[list[np.ndarray], list[str]]:
    matched = rules.matching(original, "mask")
    if not matched:
        return [], []
    shape = (frames.rows, frames.columns)
    total = np.zeros(shape, dtype=bool)
    for rule in matched:
        fill, keep = rule_rects(rule, original, frames.rows, frames.columns)
        total |= mask.rect_mask(shape, fill, keep)
        if trace is not None:
            trace.rule_rects.extend((rule.id, rect) for rect in fill)
    return [total], [f"rule_mask:{rule.id}" for rule in matched]


def _merge(a: list[np.ndarray], b: list[np.ndarray]) -> list[np.ndarray]:
    if not a:
        return b
    if not b:
        return a
    if len(a) == 1 and len(b) == 1:
        return [a[0] | b[0]]
    n = max(len(a), len(b))
    return [(a[i] if len(a) > 1 else a[0]) | (b[i] if len(b) > 1 else b[0]) for i in range(n)]


def display_frame(frames: codec.Frames, index: int) -> np.ndarray:
    if frames.palette is not None:
        indices = np.clip(frames.array[index], 0, len(frames.palette) - 1)
        return frames.palette[indices]  # type: ignore[no-any-return]
    return ocr.to_uint8(frames.array[index], frames.photometric, frames.bits_stored)


def _ocr_masks(
    frames: codec.Frames,
    settings: OcrSettings,
    secrets: mask.WordDecision,
    trace: PixelTrace | None = None,
) -> tuple[list[np.ndarray], int, list[int]]:
    """Masks from OCR, the number of boxes and the frames read (cine.py decides which
    frames of a multi-frame image are read and which reuse another frame's boxes)."""
    shape = (frames.rows, frames.columns)

    def find(image: np.ndarray) -> ocr.Ink:
        return ocr.find_ink(
            image, min_contrast=settings.min_contrast, min_chroma=settings.min_chroma
        )

    # What each reading decided, in reading order (the order of `found.read`).
    decided: list[list[tuple[ocr.Word, WordFate]]] = []

    # Detection may read with fewer languages than verification (OcrSettings).
    detection = settings.for_detection()

    def read(found: ocr.Ink) -> np.ndarray:
        text = ocr.read_ink(found, detection)
        if trace is not None:
            masked, kept = mask.decide(text.words, secrets.secrets, secrets.allow, secrets.mode)
            decided.append([(w, "masked") for w in masked] + [(w, "kept") for w in kept])
        return _text_mask(text, shape, settings, secrets)

    def find_region(image: np.ndarray, region: ink.Region) -> ocr.Ink:
        part = ocr.find_ink(
            image[region],
            min_contrast=settings.min_contrast,
            min_chroma=settings.min_chroma,
            light_floor=ink.frame_light_floor(image),
            panels=ink.dark_panels(image)[region],
        )
        return ink.embed(part, region, shape)

    found = cine.frame_masks(
        frames.count,
        lambda i: display_frame(frames, i),
        find,
        read,
        settings.sample_frames,
        settings.min_chroma,
        find_region,
    )
    if trace is not None:
        for index, words in zip(found.read, decided, strict=True):
            trace.read[index] = words
    distinct = {id(m): m for m in found.masks}.values()
    return found.masks, max(len(mask.boxes_of(m)) for m in distinct), found.read


def _text_mask(
    text: ocr.FrameText,
    shape: tuple[int, int],
    settings: OcrSettings,
    secrets: mask.WordDecision,
) -> np.ndarray:
    decided = mask.decide(text.words, secrets.secrets, secrets.allow, secrets.mode)
    secrets.kept.extend(decided[1])
    return mask.text_mask(
        text,
        shape,
        settings.margin,
        secrets.secrets,
        unread_lines_too=settings.mask_unread_lines,
        allow=secrets.allow,
        mode=secrets.mode,
        decided=decided,
    )


def _verify(
    frames: codec.Frames,
    policy: PixelPolicy,
    original: Dataset,
    identifying_values: Collection[str],
    also: set[int],
    kept_area: np.ndarray,
    trace: PixelTrace | None = None,
) -> None:
    settings = policy.ocr
    # Read other frames than detection did, with lower thresholds, so the check is not
    # a replay of the detection.
    indices = set(sample_indices(frames.count, settings.sample_frames))
    indices |= set(sample_indices(frames.count, settings.sample_frames, shift=0.5))
    indices |= also
    forbid = str(original.get("Modality", "")).upper() in {m.upper() for m in policy.forbid_text_in}
    allow = allowlist_for(policy)
    # A frame equal, pixel for pixel, to one already verified reads the same (a still
    # loop, a frozen frame): reading it again cannot find anything new. A frame equal to
    # one verified except in a part (a live image between still bands) is read in that
    # part alone, grown by the reach of the ink filters: the rest is the same pixels.
    verified: set[bytes] = set()
    seen: list[np.ndarray] = []
    pages: list[ocr.Page | None] = []
    checked: list[tuple[int, ink.Region | None]] = []
    for index in sorted(indices):
        image = display_frame(frames, index)
        digest = hashlib.blake2b(image.tobytes(), digest_size=16).digest()
        if digest in verified:
            continue
        verified.add(digest)
        region = _smallest_change(image, seen)
        seen.append(image)
        pages.extend(_verify_pages(image, region, settings))
        checked.append((index, region))
    read = _read_verification(pages, settings)
    for number, (index, region) in enumerate(checked):
        words = _placed(read[2 * number], region)
        # Any word the independent reading finds off the allow-list counts; the first
        # reading, close to detection's, reads speckle as Arabic letters too often to be
        # held to that.
        independent = _placed(read[2 * number + 1], region)
        words = words + independent
        if verify.residual_matches(words, identifying_values):
            _note(trace, index, _identifying(words, identifying_values), "identifying")
            raise QuarantineError(
                QuarantineReason.RESIDUAL_PIXEL_TEXT,
                f"identifying text still read in frame {index + 1} after masking",
            )
        if forbid and verify.readable_text(words):
            _note(trace, index, [w for w in words if verify.readable_text([w])], "forbidden_text")
            raise QuarantineError(
                QuarantineReason.RESIDUAL_PIXEL_TEXT,
                f"text still read in frame {index + 1}; the profile allows none here",
            )
        left = verify.remaining_text(
            independent, allow, any_word=policy.text == "all", kept=kept_area
        )
        if left:
            _note(trace, index, left, "remaining")
            raise QuarantineError(
                QuarantineReason.PIXEL_TEXT_REMAINING,
                f"text not on the allow-list still read in frame {index + 1} after "
                f"masking, at (x, y, width, height) {verify.positions(left)}",
            )


def _read_verification(
    pages: list[ocr.Page | None], settings: OcrSettings
) -> list[list[ocr.Word]]:
    """The words of verification's pages, in order: [first, independent] per frame.

    Every page goes to tesseract in one call (a call has a fixed cost) when detection and
    verification read the same languages. Otherwise the first readings, which look again
    at detection's kind of ink, are read in detection's languages (a language per script,
    see OcrSettings.detect_languages; reading colour-Doppler specks in a third language
    was most of a moving cine's verification), and the independent readings in every
    language of the profile: two calls."""
    detection = settings.for_detection()
    if detection is settings:
        return ocr.read_pages(pages, settings)
    first = ocr.read_pages(pages[0::2], detection)
    independent = ocr.read_pages(pages[1::2], settings)
    read: list[list[ocr.Word]] = []
    for pair in zip(first, independent, strict=True):
        read.extend(pair)
    return read


def _smallest_change(image: np.ndarray, seen: list[np.ndarray]) -> ink.Region | None:
    """The smallest part of `image` outside which it equals a frame already verified, or
    None to read it whole."""
    best: ink.Region | None = None
    for other in seen:
        region = ink.changed_region(image, other)
        if region is not None and (best is None or ink.region_area(region) < ink.region_area(best)):
            best = region
    if best is None or ink.region_area(best) >= image.shape[0] * image.shape[1]:
        return None
    return best


def _verify_pages(
    image: np.ndarray, region: ink.Region | None, settings: OcrSettings
) -> list[ocr.Page | None]:
    """The pages of verification's two readings of `image` (or of its `region`): one
    like detection with lower thresholds, and one sharing none of detection's
    preprocessing (reread.py)."""
    floor = None if region is None else ink.frame_light_floor(image)
    panels = None if region is None else ink.dark_panels(image)[region]
    part = image if region is None else image[region]
    found = ocr.find_ink(
        part,
        min_contrast=settings.verify_min_contrast,
        min_chroma=settings.verify_min_chroma,
        light_floor=floor,
        panels=panels,
    )
    first = ocr.ocr_page(found.layers, found.plain, settings.upscale)
    return [first, reread.independent_page(part)]


def _placed(words: list[ocr.Word], region: ink.Region | None) -> list[ocr.Word]:
    """Words read in `region` of a frame, in the frame's coordinates."""
    if region is None:
        return words
    dy, dx = region[0].start, region[1].start
    return [replace(w, x=w.x + dx, y=w.y + dy) for w in words]


def _identifying(words: list[ocr.Word], values: Collection[str]) -> list[ocr.Word]:
    """The words that match an identifying value alone; when only the digits of several
    words together do (a date OCR split), every word holding a digit."""
    alone = [w for w in words if verify.residual_matches([w], values)]
    return alone or [w for w in words if any(ch.isdigit() for ch in w.text)]


def _note(
    trace: PixelTrace | None, frame: int, words: list[ocr.Word], finding: RereadFinding
) -> None:
    if trace is not None:
        trace.reread[frame] = [(w, finding) for w in words]
