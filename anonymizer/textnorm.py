"""Text normalization shared by the cleaner and the self-check (French, Arabic, Latin)."""

from __future__ import annotations

import re
import unicodedata

_ARABIC_MARKS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_ARABIC_FOLD = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه"})
_HAS_ARABIC = re.compile("[\u0600-\u06ff]")
# Ideographic and phonetic scripts (CJK, kana, hangul) are written without spaces between
# words: a name in them is looked for inside longer runs of the same script, and its parts
# are also looked for written together.
UNSPACED = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uff66-\uff9f]")


def normalize(text: str) -> str:
    """NFKC, and Arabic without harakat/tatweel and with folded letter variants.

    Matching is done on this form so that a name written with or without vowel marks, or
    with a different alef, is still found. Case is handled by the regexes (IGNORECASE).
    """
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text)
    if _HAS_ARABIC.search(text):
        text = _ARABIC_MARKS.sub("", text).translate(_ARABIC_FOLD)
    return text


def strip_accents(text: str) -> str:
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c))
    )


def name_components(value: str) -> list[str]:
    """Every part of a PN value: groups (=), components (^) and the words inside them."""
    parts: list[str] = []
    for group in value.split("="):
        for component in group.split("^"):
            component = component.strip()
            if not component:
                continue
            parts.append(component)
            words = [w for w in re.split(r"[\s,.\-']+", component) if w]
            if len(words) > 1:
                parts.extend(words)
    return parts
