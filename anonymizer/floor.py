"""The national floor (profiles/floor.yaml): what no profile may keep or weaken.

The floor is data, in the profile schema; this module turns it into the set of operations
each floor attribute may undergo, checks a resolved profile against it, and says which
input values the self-check must look for whatever the profile does. Reading the file is
the loader's job (it knows lines); nothing here reads files or the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydicom.datadict import dictionary_VR, private_dictionaries

from anonymizer.profile_model import Action, AttributeRule, Option, Profile
from anonymizer.rules import Op, compile_profile, effective_action

FLOOR_NAME = "floor"
FLOOR_FILE = f"{FLOOR_NAME}.yaml"
# Where the profiles are installed (pyproject.toml maps profiles/ to this package): the
# shipped floor always applies, whichever profiles folder a deployment points at.
_SHIPPED_PACKAGE = "amana_profiles"

# Removing, emptying or replacing with a dummy is always at least as strong as any floor.
_ALWAYS = frozenset({Op.REMOVE, Op.EMPTY, Op.DUMMY})
_BY_ACTION: dict[Action, frozenset[Op]] = {
    Action.X: frozenset({Op.REMOVE}),
    Action.Z: frozenset({Op.REMOVE, Op.EMPTY}),
    Action.XZ: frozenset({Op.REMOVE, Op.EMPTY}),
    Action.D: _ALWAYS,
    Action.XD: _ALWAYS,
    Action.ZD: _ALWAYS,
    Action.XZD: _ALWAYS,
    Action.PSEUDONYM: _ALWAYS | {Op.PSEUDONYM},
    Action.SHIFT_DATE: _ALWAYS | {Op.SHIFT},
    Action.CLEAN: _ALWAYS | {Op.CLEAN},
}
# Private elements the vendors' dictionaries describe as one of these are floor data too.
_PRIVATE_FLOOR_WORDS = ("patient name", "patient's name", "patient id", "birth date",
                        "patient birth", "accession")


class FloorError(ValueError):
    """floor.yaml itself is not a usable floor (a K, or an action with no meaning here)."""


@dataclass(frozen=True)
class FloorEntry:
    tag: int
    keyword: str
    weakest: str  # the action written in floor.yaml, for messages
    allowed: frozenset[Op]


@dataclass(frozen=True)
class Floor:
    entries: dict[int, FloorEntry]

    @property
    def tags(self) -> frozenset[int]:
        return frozenset(self.entries)

    def stricter(self, other: Floor) -> Floor:
        """Both floors at once: a tag either names, the operations both allow."""
        merged = dict(self.entries)
        for tag, entry in other.entries.items():
            mine = merged.get(tag)
            if mine is None:
                merged[tag] = entry
            else:
                allowed = mine.allowed & entry.allowed
                weakest = mine.weakest if allowed == mine.allowed else entry.weakest
                merged[tag] = FloorEntry(tag, mine.keyword, weakest, allowed)
        return Floor(merged)


@dataclass(frozen=True)
class Violation:
    """One effective rule that keeps or weakens a floor attribute (no values in it)."""

    section: str  # "attributes" (a rule by tag) or "private" (a private keep)
    tag: int | None
    keyword: str
    action: str
    option: str | None  # the selected option whose table cell decided, if any
    weakest: str
    private_address: tuple[str, str | None, str] | None = None

    def reason(self) -> str:
        if self.private_address is not None:
            creator, group, element = self.private_address
            return (
                f"private element {creator!r} {group or 'any group'}/{element} "
                f"({self.keyword}) is floor data (floor.yaml): it may not be kept or cleaned"
            )
        assert self.tag is not None
        how = f"action {self.action!r}"
        if self.option is not None:
            how += f" (under option {self.option})"
        return (
            f"{self.keyword or _fmt(self.tag)} {_fmt(self.tag)} is on the floor (floor.yaml): "
            f"{how} keeps or weakens it; the weakest allowed is {self.weakest!r}"
        )


def floor_from_profile(profile: Profile) -> Floor:
    """The floor a floor-shaped profile states; refuses a floor that would keep anything."""
    entries: dict[int, FloorEntry] = {}
    for rule in (*profile.table, *profile.attributes):
        allowed = _allowed_for(rule)
        if allowed is None or "x" in rule.tag:
            raise FloorError(
                f"{rule.keyword or rule.tag}: action {rule.action.value!r} cannot be a floor"
            )
        tag = int(rule.tag[1:5] + rule.tag[6:10], 16)
        entries[tag] = FloorEntry(tag, rule.keyword or "", rule.action.value, allowed)
    return Floor(entries)


def _allowed_for(rule: AttributeRule) -> frozenset[Op] | None:
    if rule.options:
        return None  # a floor does not bend to options
    if rule.action == Action.GENERALIZE:
        return _ALWAYS | {Op.AGE if rule.method == "age" else Op.REGION}
    return _BY_ACTION.get(rule.action)


def check_profile(profile: Profile, floor: Floor) -> list[Violation]:
    """Every effective rule of a resolved profile (options applied) below the floor.

    Rules apply by tag at every depth of every sequence, so checking the tag rules covers
    nested items; a floor attribute the profile does not name is removed (the default).
    """
    compiled = compile_profile(profile)
    options = frozenset(profile.options)
    by_tag = {rule.tag: rule for rule in profile.table}
    by_tag.update({rule.tag: rule for rule in profile.attributes})
    violations: list[Violation] = []
    for tag, entry in sorted(floor.entries.items()):
        rule = compiled.rule_for(tag)
        if rule is None or rule.op in entry.allowed:
            continue
        source = by_tag.get(_fmt(tag))
        action, option = effective_action(source, options) if source else (rule.action, None)
        violations.append(Violation("attributes", tag, entry.keyword, action, option,
                                    entry.weakest))
    if Option.RETAIN_SAFE_PRIVATE in options:
        for keep in profile.private.keep:
            if keep.action not in ("K", "clean"):
                continue
            described = _private_description(keep.creator, keep.group, keep.element)
            if described is not None:
                violations.append(Violation(
                    "private", None, described, keep.action, None, "X",
                    (keep.creator, keep.group, keep.element),
                ))
    return violations


def _private_description(creator: str, group: str | None, element: str) -> str | None:
    """The vendor dictionary's name for a private element when it names floor data."""
    entries = private_dictionaries.get(creator.strip(), {})
    for key, (vr, _vm, name, _retired) in entries.items():
        # keys look like '0019xx10': group, block placeholder, element byte
        if key[6:8].upper() != element or (group is not None and key[:4].upper() != group):
            continue
        lowered = name.lower()
        if vr == "PN" or any(word in lowered for word in _PRIVATE_FLOOR_WORDS):
            return name
    return None


def shipped_floor_file() -> Path | None:
    """floor.yaml as installed with Amana (None in a zipped or stripped install)."""
    try:
        root = resources.files(_SHIPPED_PACKAGE)
    except ModuleNotFoundError:
        return None
    if not isinstance(root, Path):
        return None
    file = root / FLOOR_FILE
    return file if file.is_file() else None


def floor_category(tag: int) -> str:
    """How the self-check compares a floor value: name, date, phone or identifier."""
    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        return "identifier"
    if vr == "PN":
        return "name"
    if vr in ("DA", "DT"):
        return "date"
    if tag in _PHONE_TAGS:
        return "phone"
    return "identifier"


# PatientTelephoneNumbers, ReferringPhysicianTelephoneNumbers, PersonTelephoneNumbers,
# OrderCallbackPhoneNumber: compared by their digits (spaces, dashes, + vary by writer).
_PHONE_TAGS = frozenset({0x00102154, 0x00080094, 0x00401103, 0x00402010})


def _fmt(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
