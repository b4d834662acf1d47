"""The engine's check of its own output: no original identifying value may remain.

Two scans, because either alone can miss: the raw bytes outside the pixel data (catches
anything in any element at any depth, private included, in the encodings the file uses),
and for ISO 2022 character sets, where bytes are escape-coded, the decoded text values.
Telephone numbers are compared by their digits, whatever the separators.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from pydicom.charset import convert_encodings
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from anonymizer.errors import QuarantineError, QuarantineReason
from anonymizer.identity import IdentifyingValues, is_meaningful
from anonymizer.output import bytes_outside_pixels
from anonymizer.paths import relpath_for
from anonymizer.peek import peek
from anonymizer.textclean import date_forms
from anonymizer.textnorm import UNSPACED, normalize, strip_accents

# A hit must stand alone: no letter, digit, underscore or non-ASCII byte on either side.
_ENCODINGS = ("utf-8", "latin-1", "cp1256", "iso8859_6")
# A run of digits with the separators people put in telephone numbers.
_PHONE_RUN = re.compile(rb"\+?\d[\d \-.()/]{4,}\d")
_PLAIN_UID = re.compile(r"[0-9.]+")
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


def _encoded_forms(value: str, encodings: tuple[str, ...]) -> set[bytes]:
    forms: set[bytes] = set()
    for variant in {value, value.upper(), value.lower(), value.casefold()}:
        for encoding in (*_ENCODINGS, *encodings):
            try:
                forms.add(variant.encode(encoding))
            except UnicodeEncodeError:
                continue
    return forms


@dataclass(frozen=True)
class _Needles:
    """Encoded forms to look for, lower-cased (ASCII) to match a lower-cased haystack."""

    texts: tuple[bytes, ...]
    uids: tuple[bytes, ...]
    unbounded: frozenset[bytes]  # scripts written without spaces: found anywhere


def _needles(
    texts: tuple[str, ...], uids: tuple[str, ...], encodings: tuple[str, ...] = ()
) -> _Needles:
    text_forms, unbounded = _text_needles(texts, encodings)
    uid_forms = {uid.encode("ascii", "replace") for uid in uids}
    return _Needles(text_forms, tuple(sorted(uid_forms)), unbounded)


# Keyed on the text values alone: they are the patient's and stay the same over a study,
# while the UIDs (the instance's own among them) differ with every instance and would make
# every lookup a miss.
@lru_cache(maxsize=1024)
def _text_needles(
    texts: tuple[str, ...], encodings: tuple[str, ...]
) -> tuple[tuple[bytes, ...], frozenset[bytes]]:
    text_forms: set[bytes] = set()
    unbounded: set[bytes] = set()
    for value in texts:
        forms = {form.lower() for form in _encoded_forms(value, encodings)}
        text_forms |= forms
        if UNSPACED.search(value):
            unbounded |= forms
    return tuple(sorted(text_forms)), frozenset(unbounded)


def _is_word_byte(byte: int) -> bool:
    return byte >= 0x80 or byte == 0x5F or 0x30 <= byte <= 0x39 or 0x61 <= byte <= 0x7A


def _found_standalone(haystack: bytes, needle: bytes, uid: bool) -> bool:
    """`needle` occurs with no word byte (or, for UIDs, no digit/dot before) around it."""
    start = haystack.find(needle)
    while start >= 0:
        end = start + len(needle)
        before = haystack[start - 1] if start > 0 else 0x20
        after = haystack[end] if end < len(haystack) else 0x20
        if uid:
            # a longer UID with this one as prefix is still traceable: only digits extend
            standalone = not (0x30 <= before <= 0x39 or before == 0x2E) and not (
                0x30 <= after <= 0x39
            )
        else:
            standalone = not _is_word_byte(before) and not _is_word_byte(after)
        if standalone:
            return True
        start = haystack.find(needle, start + 1)
    return False


@lru_cache(maxsize=1024)
def _text_regex(texts: tuple[str, ...]) -> re.Pattern[str] | None:
    if not texts:
        return None
    ordered = sorted(texts, key=len, reverse=True)
    bounded = "|".join(re.escape(v) for v in ordered if not UNSPACED.search(v))
    unbounded = "|".join(re.escape(v) for v in ordered if UNSPACED.search(v))
    parts = [rf"(?<!\w)(?:{bounded})(?!\w)"] if bounded else []
    if unbounded:
        parts.append(f"(?:{unbounded})")
    return re.compile("|".join(parts), re.IGNORECASE)


def _phone_core(digits: str) -> str:
    """The subscriber part: without the trunk 0 or international 00 prefix."""
    return digits.lstrip("0")


@lru_cache(maxsize=1024)
def _phone_cores_cached(phones: tuple[str, ...]) -> frozenset[str]:
    return frozenset(core for core in map(_phone_core, phones) if len(core) >= 8)


def _phone_cores(phones: set[str]) -> frozenset[str]:
    return _phone_cores_cached(tuple(sorted(phones))) if phones else frozenset()


def _has_phone(chunk: bytes, cores: frozenset[str]) -> bool:
    """A run of digits (spaces, dashes, dots, +, brackets between them) that is one of the
    numbers, possibly written with a country code (at most 4 more leading digits)."""
    for match in _PHONE_RUN.finditer(chunk):
        run = _phone_core(bytes(c for c in match.group() if 0x30 <= c <= 0x39).decode())
        for core in cores:
            if run.endswith(core) and len(run) - len(core) <= 4:
                return True
    return False


def scan_bytes(
    chunks: Iterable[bytes], found: IdentifyingValues, encodings: tuple[str, ...] = ()
) -> bool:
    """True when any original identifying value occurs in the given bytes.

    `encodings`: the Python codecs of the output's own character set, so that values are
    also looked for as that file writes them. bytes.find per value (C speed) beats one big
    alternation regex by an order of magnitude on a header of a few kilobytes.
    """
    texts, uids = meaningful_values(found)
    needles = _needles(texts, uids, encodings)
    phones = _phone_cores(found.phones)
    for chunk in chunks:
        lowered = chunk.lower()  # ASCII only; non-ASCII case variants are in the needles
        for needle in needles.texts:
            if needle in lowered and (
                needle in needles.unbounded or _found_standalone(lowered, needle, uid=False)
            ):
                return True
        if phones and _has_phone(chunk, phones):
            return True
        for needle in needles.uids:
            if needle in chunk and _found_standalone(chunk, needle, uid=True):
                return True
    return False


def scan_dataset(ds: Dataset, found: IdentifyingValues, non_ascii_only: bool = False) -> str | None:
    """The keyword (or tag) of the first decoded text value holding an identifying value.

    `non_ascii_only`: skip values whose bytes are plain ASCII (the byte scan has seen them
    as they are; decoding cannot change them); not for ISO 2022, whose escapes are ASCII.
    """
    texts, uids = meaningful_values(found)
    if not texts and not uids:
        return None
    # The regex is compiled for the text values only (cached: a study's patient is the same
    # for each of its instances, and compiling cost milliseconds per instance); UIDs, new
    # with every instance, are looked for by substring with the same word boundaries. A
    # malformed UID (letters: case matters to the regex) stays in the regex.
    plain = tuple(uid for uid in uids if _PLAIN_UID.fullmatch(uid))
    odd = tuple(uid for uid in uids if not _PLAIN_UID.fullmatch(uid))
    return _scan(ds, _Matcher(_text_regex(texts + odd), plain), non_ascii_only)


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


@dataclass(frozen=True)
class _Matcher:
    """Text values by a regex, UIDs as standalone substrings (no word character on either
    side, as the regex's look-arounds ask of a text value)."""

    pattern: re.Pattern[str] | None
    uids: tuple[str, ...]

    def search(self, text: str) -> bool:
        if self.pattern is not None and self.pattern.search(text):
            return True
        return any(self._standalone(text, uid) for uid in self.uids if uid in text)

    @staticmethod
    def _standalone(text: str, uid: str) -> bool:
        start = text.find(uid)
        while start >= 0:
            end = start + len(uid)
            if not (start > 0 and _is_word_char(text[start - 1])) and not (
                end < len(text) and _is_word_char(text[end])
            ):
                return True
            start = text.find(uid, start + 1)
        return False


def _scan(ds: Dataset, pattern: _Matcher, non_ascii_only: bool) -> str | None:
    for tag, raw in ds._dict.items():
        vr = raw.VR
        if (isinstance(raw, RawDataElement) and vr not in _TEXT_VRS
                and vr not in (None, "UN", "OB", "SQ")):
            # An explicit VR that is not text stays what it is once converted (only
            # missing and UN VRs are looked up): nothing to decode, nothing to scan.
            continue
        held = raw.value
        if non_ascii_only and isinstance(held, bytes | str) and held.isascii():
            continue  # cheap: no conversion of the many plain values
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value or ():
                where = _scan(item, pattern, non_ascii_only)
                if where is not None:
                    return where
            continue
        if elem.VR not in _TEXT_VRS and not (elem.tag.is_private and elem.VR in ("UN", "OB")):
            continue
        value = elem.value
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        text = normalize(str(value)) if value is not None else ""
        if text and (pattern.search(text) or pattern.search(strip_accents(text))):
            return elem.keyword or str(elem.tag)
    return None


def self_check(
    output: bytes, ds: Dataset, found: IdentifyingValues, records: dict[int, bytes]
) -> None:
    """Quarantine (`residual_phi`) an output holding any original identifying value: in any
    element at any depth, private blocks included, or in the archive path built from it."""
    chunks = bytes_outside_pixels(output, ds)
    # Amana's own what-was-done text ("Retain Patient Characteristics Option"...) is no
    # leak, even for a patient whose name is a word of it.
    for encoded in records.values():
        chunks = [chunk.replace(encoded, b"") for chunk in chunks]
    try:
        path = relpath_for(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                           str(ds.SOPInstanceUID))
    except ValueError:
        raise QuarantineError(
            QuarantineReason.RESIDUAL_PHI, "the archive path would hold more than new UIDs"
        ) from None
    chunks.append(str(path).encode("ascii", "replace"))
    charset = ds.get("SpecificCharacterSet", "")
    charsets = [charset] if isinstance(charset, str) else list(charset)
    if scan_bytes(chunks, found, _codecs(tuple(charsets))):
        raise QuarantineError(
            QuarantineReason.RESIDUAL_PHI,
            "an original identifying value remains in the de-identified output",
        )
    # Escape-coded bytes (ISO 2022) and text typed with marks or accents the header lacks
    # (Arabic harakat, é for e) only compare once decoded and normalized; plain ASCII
    # values need no second look outside ISO 2022.
    iso2022 = any("2022" in c for c in charsets)
    if found.names or found.identifiers:
        where = scan_dataset(ds, found, non_ascii_only=not iso2022)
        if where is not None:
            raise QuarantineError(
                QuarantineReason.RESIDUAL_PHI,
                f"an original identifying value remains in {where}",
            )


@lru_cache(maxsize=64)
def _codecs(charsets: tuple[str, ...]) -> tuple[str, ...]:
    """Python codecs of a declared character set; ISO 2022 sets are scanned decoded."""
    if not any(charsets):
        return ()
    try:
        codecs = convert_encodings([c for c in charsets if c] or [""])
    except (LookupError, ValueError):
        return ()
    return tuple(c for c in dict.fromkeys(codecs) if "2022" not in c)


def forgive_retained(found: IdentifyingValues, ds: Dataset, region_names: set[str]) -> None:
    """A removed value found in a value the profile keeps or writes is not a leak.

    (A station named after the manufacturer, or a town that is also in the region name the
    profile writes, would otherwise quarantine every instance of that machine or town.)
    InstitutionName counts only when it is a region the profile wrote: a kept hospital name
    is floor data, never an excuse.
    """
    kept = {
        str(peek(ds, tag) or "").strip().casefold()
        for tag in (0x00080070, 0x00081090)  # Manufacturer, Manufacturer's Model Name
    }
    institution = str(peek(ds, 0x00080080) or "").strip()  # Institution Name
    if institution in region_names:
        kept.add(institution.casefold())
    kept.discard("")
    if kept:
        found.identifiers -= {
            v for v in found.identifiers if any(v.casefold() in k for k in kept)
        }
