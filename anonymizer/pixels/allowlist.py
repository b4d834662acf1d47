"""The steward's allow-list of technical annotations (profiles/pixel/allowlist.yaml).

In `text: all` mode, every word OCR reads in an examined image is masked unless the
allow-list accepts it. Identity can be written in any form (a nickname, a misspelling,
another alphabet), so the list says what may stay, never what must go.

Numbers are the hard part: dates, times and IDs are digits too. A number stays only when
it is short (at most `max_number_digits` digits in all), carries no date or time separator
(`/`, `:`, `-` between digits, two dots), and has no bare number right beside it on its
line (OCR splits "08/29/1951" into "08", "29", "1951" and drops the slashes).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anonymizer.errors import QuarantineError, QuarantineReason

from .ocr import Word
from .policy import PixelPolicy

# Punctuation OCR attaches to words ("MI:", "(L)", "Gain,"); '%' is a unit, and a leading
# sign belongs to a number.
_STRIP = ".,;:!?()[]{}\"'|*~_<>«»"
_NUMBER = re.compile(r"^([^\W\d_]*)([+-]?\d+(?:[.,]\d+)?)([^\W\d_]*(?:/[^\W\d_]+)?%?)$")
# Digits joined by a date or time separator, or a dotted date (12.03.61).
_DATE_OR_TIME = re.compile(r"\d\s*[/:\-]\s*\d|\d+\.\d+\.\d+")
_DIGIT_RUN = re.compile(r"\d+")


class AllowListFile(BaseModel):
    """The YAML file's shape; unknown keys are errors (a typo must not widen the list)."""

    model_config = ConfigDict(extra="forbid")

    max_number_digits: int = Field(default=3, ge=0, le=3)
    words: list[str] = Field(default_factory=list)
    units: list[str] = Field(default_factory=list)
    index_prefixes: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class AllowList:
    """Casefolded entries of one allow-list file; the empty list allows nothing."""

    words: frozenset[str] = frozenset()
    units: frozenset[str] = frozenset()
    prefixes: frozenset[str] = frozenset()
    max_digits: int = 0

    def allows_token(self, token: str) -> bool:
        """Whether one OCR word, judged alone, is a technical annotation."""
        text = token.strip(_STRIP).casefold()
        if not text:
            return True
        if text in self.words:
            return True
        if "=" in text:
            return all(self.allows_token(part) for part in text.split("="))
        if _DATE_OR_TIME.search(text):
            return False
        number = _NUMBER.match(text)
        if number is not None:
            prefix, digits, unit = number.groups()
            return (
                sum(ch.isdigit() for ch in digits) <= self.max_digits
                and (not prefix or prefix in self.prefixes)
                and (not unit or unit in self.units)
            )
        # A unit alone ("cm" under a scale); one letter could be a sex or an initial.
        return len(text) >= 2 and text in self.units

    def allowed(self, words: Sequence[Word]) -> list[bool]:
        """For each word, whether it may stay, judged with its neighbours on its line."""
        verdicts = [self.allows_token(w.text) for w in words]
        for index, word in enumerate(words):
            if (
                verdicts[index]
                and _bare_number(word.text)
                and any(_bare_number(words[n].text) for n in _neighbours(words, index))
            ):
                verdicts[index] = False
        return verdicts


EMPTY = AllowList()


def _bare_number(text: str) -> bool:
    stripped = text.strip(_STRIP)
    return bool(stripped) and stripped.lstrip("+-").replace(".", "", 1).isdigit()


def _neighbours(words: Sequence[Word], index: int) -> list[int]:
    """Words on the same line as `index`, right before or after it (a gap of at most
    1.5 letter heights): a date split by OCR has its parts this close."""
    word = words[index]
    found: list[int] = []
    for other_index, other in enumerate(words):
        if other_index == index:
            continue
        overlap = min(word.y + word.height, other.y + other.height) - max(word.y, other.y)
        if overlap < 0.5 * min(word.height, other.height):
            continue
        gap = max(other.x - (word.x + word.width), word.x - (other.x + other.width))
        if gap <= 1.5 * max(word.height, other.height):
            found.append(other_index)
    return found


def looks_identifying(text: str) -> bool:
    """Digits shaped like a date, a time or an ID: a separator between digits with three
    digits or more in all (8:48, 3/3/4; "5-5" is a mark or a probe), or a run of more than
    three digits (years, record numbers)."""
    stripped = text.strip(_STRIP)
    runs = _DIGIT_RUN.findall(stripped)
    if _DATE_OR_TIME.search(stripped) and sum(len(run) for run in runs) >= 3:
        return True
    return any(len(run) > 3 for run in runs)


def letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


class AllowListError(ValueError):
    """A missing or malformed allow-list file."""


def parse_allowlist(text: str, name: str) -> AllowList:
    try:
        data = yaml.safe_load(text) or {}
        parsed = AllowListFile.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise AllowListError(f"allow-list {name} is malformed ({type(exc).__name__})") from exc
    return AllowList(
        frozenset(w.casefold() for w in parsed.words),
        frozenset(u.casefold() for u in parsed.units),
        frozenset(p.casefold() for p in parsed.index_prefixes),
        parsed.max_number_digits,
    )


@functools.lru_cache(maxsize=16)
def _load(path: Path, mtime_ns: int, size: int) -> AllowList:
    # mtime and size are in the key so that a steward's edit is read again.
    if not path.resolve().is_relative_to(path.parent.resolve()):
        raise AllowListError(f"allow-list {path.name} leads outside the rules folder")
    return parse_allowlist(path.read_text(encoding="utf-8"), path.name)


def allowlist_for(policy: PixelPolicy) -> AllowList:
    """The policy's allow-list; none named allows nothing. A named list that cannot be
    read quarantines (pixel_policy) rather than masking less or more than the steward
    decided."""
    name = policy.allowlist
    if name is None:
        return EMPTY
    directory = policy.rules_dir
    if directory is None:
        raise QuarantineError(
            QuarantineReason.PIXEL_POLICY, f"allow-list {name} named but no rules folder bound"
        )
    if not re.match(r"^[A-Za-z0-9._-]+$", name) or name.startswith("."):
        raise QuarantineError(QuarantineReason.PIXEL_POLICY, f"{name!r} is not a file name")
    path = Path(directory) / f"{name}.yaml"
    try:
        stat = path.stat()
        return _load(path, stat.st_mtime_ns, stat.st_size)
    except OSError as exc:
        raise QuarantineError(
            QuarantineReason.PIXEL_POLICY, f"allow-list {name}.yaml not found"
        ) from exc
    except AllowListError as exc:
        raise QuarantineError(QuarantineReason.PIXEL_POLICY, str(exc)) from exc
