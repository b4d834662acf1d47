"""The engine's check of its own output: no original identifying value may remain.

Two scans, because either alone can miss: the raw bytes outside the pixel data (catches
anything in any element at any depth, private included, in the encodings the file uses),
and for ISO 2022 character sets, where bytes are escape-coded, the decoded text values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from pydicom.dataset import Dataset

from anonymizer.identity import IdentifyingValues, is_meaningful
from anonymizer.textclean import date_forms
from anonymizer.textnorm import normalize, strip_accents

# A hit must stand alone: no letter, digit, underscore or non-ASCII byte on either side.
_BYTE_EDGE_BEFORE = rb"(?<![A-Za-z0-9_\x80-\xff])"
_BYTE_EDGE_AFTER = rb"(?![A-Za-z0-9_\x80-\xff])"
_UID_EDGE_BEFORE = rb"(?<![0-9.])"
_UID_EDGE_AFTER = rb"(?![0-9])"
_ENCODINGS = ("utf-8", "latin-1", "cp1256", "iso8859_6")
_TEXT_VRS = frozenset(
    {"LO", "SH", "ST", "LT", "UT", "UC", "PN", "CS", "AE", "UR", "DA", "DT", "UI"}
)


def meaningful_values(found: IdentifyingValues) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(text values, UIDs) worth scanning for; short values would only give false alarms."""
    texts: set[str] = set()
    for value in (*found.names, *found.identifiers):
        if is_meaningful(value, "text"):
            texts.add(value)
            texts.add(strip_accents(value))
    for day in found.dates:
        if is_meaningful(day, "date"):
            texts.update(date_forms(day))
    uids = {uid for uid in found.uids if is_meaningful(uid, "uid")}
    return tuple(sorted(texts)), tuple(sorted(uids))


def _encoded_forms(value: str) -> set[bytes]:
    forms: set[bytes] = set()
    for variant in {value, value.upper(), value.lower(), value.casefold()}:
        for encoding in _ENCODINGS:
            try:
                forms.add(variant.encode(encoding))
            except UnicodeEncodeError:
                continue
    return forms


@lru_cache(maxsize=1024)
def _bytes_regex(texts: tuple[str, ...], uids: tuple[str, ...]) -> re.Pattern[bytes] | None:
    parts: list[bytes] = []
    text_forms = sorted({f for value in texts for f in _encoded_forms(value)}, key=len,
                        reverse=True)
    if text_forms:
        alternatives = b"|".join(re.escape(f) for f in text_forms)
        parts.append(_BYTE_EDGE_BEFORE + b"(?:" + alternatives + b")" + _BYTE_EDGE_AFTER)
    if uids:
        alternatives = b"|".join(re.escape(u.encode("ascii", "replace")) for u in uids)
        parts.append(_UID_EDGE_BEFORE + b"(?:" + alternatives + b")" + _UID_EDGE_AFTER)
    if not parts:
        return None
    return re.compile(b"|".join(parts), re.IGNORECASE)


@lru_cache(maxsize=1024)
def _text_regex(texts: tuple[str, ...]) -> re.Pattern[str] | None:
    if not texts:
        return None
    alternatives = "|".join(re.escape(v) for v in sorted(texts, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def scan_bytes(chunks: Iterable[bytes], found: IdentifyingValues) -> bool:
    """True when any original identifying value occurs in the given bytes."""
    texts, uids = meaningful_values(found)
    pattern = _bytes_regex(texts, uids)
    if pattern is None:
        return False
    return any(pattern.search(chunk) is not None for chunk in chunks)


def scan_dataset(ds: Dataset, found: IdentifyingValues) -> str | None:
    """The keyword (or tag) of the first decoded text value holding an identifying value."""
    texts, uids = meaningful_values(found)
    pattern = _text_regex(texts + uids)
    if pattern is None:
        return None
    return _scan(ds, pattern)


def _scan(ds: Dataset, pattern: re.Pattern[str]) -> str | None:
    for elem in ds.iterall():
        if elem.VR not in _TEXT_VRS and not (elem.tag.is_private and elem.VR in ("UN", "OB")):
            continue
        value = elem.value
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        text = normalize(str(value)) if value is not None else ""
        if text and pattern.search(text):
            return elem.keyword or str(elem.tag)
    return None
