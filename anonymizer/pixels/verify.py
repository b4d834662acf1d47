"""Is there text left after masking: words matching the instance's identifying values,
or (`remaining_text`) any word the allow-list does not accept?

OCR misreads characters, so matching is tolerant: values and words are normalized
(case, accents, Arabic diacritics, separators), numbers are also compared with their
separators removed, and long tokens may differ by one character.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Sequence

import numpy as np

from .allowlist import AllowList, letters, looks_identifying
from .ocr import Word

_SPLIT = re.compile(r"[\W_]+", re.UNICODE)
_ARABIC_MARKS = re.compile(r"[\u064B-\u065F\u0670\u0640\u200e\u200f]")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _ARABIC_MARKS.sub("", text)
    return text.casefold()


def tokens(text: str) -> list[str]:
    return [t for t in _SPLIT.split(normalize(text)) if t]


def _significant(token: str) -> bool:
    # Short fragments (day, month, initials) match too much unrelated text to mean PHI.
    if token.isdigit():
        return len(token) >= 4
    return len(token) >= 3


_UID = re.compile(r"^\s*\d+(\.\d+){3,}\s*$")


def identifying_tokens(values: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for value in values:
        if _UID.match(value):
            # UIDs are never drawn on images; their digit groups (10008, 113619) would
            # match unrelated numbers such as depths and frame counters.
            continue
        parts = tokens(value)
        found.update(p for p in parts if _significant(p))
        digits = "".join(ch for ch in normalize(value) if ch.isdigit())
        if len(digits) >= 4:
            found.add(digits)
        found.update(_date_forms(digits))
    return found


def _date_forms(digits: str) -> set[str]:
    """A DICOM date (YYYYMMDD) as images write it: 12/03/1961, 03/12/1961, 12.03.61."""
    if len(digits) != 8 or not digits.isdigit():
        return set()
    year, month, day = digits[:4], digits[4:6], digits[6:]
    if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31):
        return set()
    return {day + month + year, month + day + year, day + month + year[2:]}


def _within_one_edit(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = j = edits = 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            i += 1
            j += 1
            continue
        edits += 1
        if edits > 1:
            return False
        if len(a) == len(b):
            i += 1
        j += 1
    return edits + (len(b) - j) + (len(a) - i) <= 1


def _matches(word_token: str, secret: str) -> bool:
    if word_token == secret:
        return True
    if len(secret) >= 4 and secret in word_token:
        return True
    return len(secret) >= 5 and _within_one_edit(word_token, secret)


def residual_matches(
    words: Collection[Word],
    values: Collection[str],
    *,
    secret_tokens: Collection[str] | None = None,
) -> int:
    """How many read words (or runs of digits across words) match an identifying value.

    `secret_tokens` (from identifying_tokens) may be given instead of `values` to save work."""
    secrets = set(secret_tokens) if secret_tokens is not None else identifying_tokens(values)
    if not secrets or not words:
        return 0
    hits = 0
    for word in words:
        for token in tokens(word.text):
            if any(_matches(token, s) for s in secrets):
                hits += 1
    # Dates and IDs are often split by OCR into several words: compare the digits of
    # the whole read text too.
    all_digits = "".join(ch for w in words for ch in normalize(w.text) if ch.isdigit())
    hits += sum(1 for s in secrets if s.isdigit() and len(s) >= 6 and s in all_digits)
    return hits


def readable_text(words: Collection[Word], min_confidence: float = 50.0) -> int:
    """Words that are confidently text (for modalities where no text may remain)."""
    count = 0
    for word in words:
        alnum = sum(1 for ch in word.text if ch.isalnum())
        if alnum >= 2 and word.confidence >= min_confidence:
            count += 1
    return count


# A word read after masking counts as remaining text when tesseract is this sure of it:
# speckle read as letters scores lower (measured on the synthetic clean images).
REMAINING_MIN_CONFIDENCE = 60.0
# Over image content (speckle, colour Doppler) only a sure reading counts.
REMAINING_BUSY_MIN_CONFIDENCE = 80.0
REMAINING_MIN_LETTERS = 3
# Shorter "words" are marks, logos and ticks read as characters: no legible text is this small.
REMAINING_MIN_HEIGHT_PX = 7


def remaining_text(
    words: Sequence[Word],
    allow: AllowList,
    *,
    any_word: bool,
    kept: np.ndarray | None = None,
) -> list[Word]:
    """Words that must not be in a verified image: not allow-listed, and shaped like a
    date, a time or an ID, or (with `any_word`, the `text: all` mode) holding three
    letters or more. Words centred in `kept` (where detection read allow-listed words
    and left them) are another reading of those words."""
    verdicts = allow.allowed(words)
    found: list[Word] = []
    for word, allowed in zip(words, verdicts, strict=True):
        floor = REMAINING_BUSY_MIN_CONFIDENCE if word.busy else REMAINING_MIN_CONFIDENCE
        if allowed or word.confidence < floor or word.height < REMAINING_MIN_HEIGHT_PX:
            continue
        if _inside(word, kept):
            continue
        if looks_identifying(word.text) or (
            any_word and letters(word.text) >= REMAINING_MIN_LETTERS
        ):
            found.append(word)
    return found


def _inside(word: Word, area: np.ndarray | None) -> bool:
    if area is None:
        return False
    y, x = word.y + word.height // 2, word.x + word.width // 2
    return 0 <= y < area.shape[0] and 0 <= x < area.shape[1] and bool(area[y, x])


def positions(words: Sequence[Word], limit: int = 6) -> str:
    """Where words are, as (x, y, width, height) boxes: quarantine messages carry
    positions, never the text read."""
    boxes = ", ".join(f"({w.x}, {w.y}, {w.width}, {w.height})" for w in words[:limit])
    more = f" and {len(words) - limit} more" if len(words) > limit else ""
    return boxes + more
