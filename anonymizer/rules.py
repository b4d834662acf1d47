"""A profile compiled into lookups: tag -> operation, done once per worker process.

The walk over an instance then costs one dict lookup per element; nothing here is
re-derived per instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from pydicom.datadict import DicomDictionary, RepeatersDictionary, dictionary_VR

from anonymizer.profile_model import (
    OPTION_ORDER,
    TAG_PATTERN,
    Action,
    AttributeRule,
    Option,
    Profile,
)
from anonymizer.vr import FREE_TEXT_VRS


class Op(IntEnum):
    KEEP = 1  # sequences: keep and apply the rules to every item
    REMOVE = 2
    EMPTY = 3
    DUMMY = 4
    UID = 5
    PSEUDONYM = 6
    SHIFT = 7
    CLEAN = 8
    AGE = 9
    REGION = 10


@dataclass(frozen=True)
class Rule:
    op: Op
    keyword: str  # for pseudonym domains and explain output; "" for patterns/private
    action: str  # the profile action this came from (for explain / conformance)
    option: str | None  # the selected option whose cell decided, if any


@dataclass(frozen=True)
class PatternRule:
    mask: int
    value: int
    rule: Rule


@dataclass
class CompiledProfile:
    exact: dict[int, Rule]
    patterns: tuple[PatternRule, ...]
    private: dict[tuple[str, int | None, int], Rule]
    keep_private: bool
    options: frozenset[Option] = field(default_factory=frozenset)

    def rule_for(self, tag: int) -> Rule | None:
        rule = self.exact.get(tag)
        if rule is None and 0x5000 <= (tag >> 16) <= 0x60FF:
            for pattern in self.patterns:
                if tag & pattern.mask == pattern.value:
                    return pattern.rule
        return rule


DATE_OPTIONS = frozenset({Option.RETAIN_LONG_FULL_DATES, Option.RETAIN_LONG_MODIFIED_DATES})


def effective_action(rule: AttributeRule, options: frozenset[Option]) -> tuple[str, str | None]:
    """The action code that applies under the selected options, and the deciding option."""
    for option in OPTION_ORDER:
        if option in options and option in rule.options:
            return rule.options[option], option.value
    return rule.action.value, None


def _op_for(
    code: str, vr: str, option: str | None, rule: AttributeRule, pixels_examined: bool
) -> Op:
    if code == "K":
        return Op.KEEP
    if code == "X":
        return Op.REMOVE
    if code in ("Z", "X/Z"):
        return Op.EMPTY
    if code in ("D", "X/D", "Z/D", "X/Z/D"):
        return Op.UID if vr == "UI" else Op.DUMMY
    if code in ("U", "X/Z/U*"):
        return Op.UID if vr in ("UI", "SQ") else Op.EMPTY
    if code == "C":
        return _clean_op(vr, option, pixels_examined)
    if code == Action.PSEUDONYM:
        return Op.PSEUDONYM
    if code == Action.SHIFT_DATE:
        return Op.SHIFT if vr in ("DA", "DT") else Op.KEEP
    if code == Action.CLEAN:
        return Op.CLEAN if vr not in ("PN",) else Op.DUMMY
    if code == Action.GENERALIZE:
        return Op.AGE if rule.method == "age" else Op.REGION
    raise ValueError(f"unknown action {code}")


def _clean_op(vr: str, option: str | None, pixels_examined: bool) -> Op:
    """PS3.15 'C': replace with values of similar meaning that are not identifying."""
    if vr in ("DA", "DT"):
        return Op.SHIFT  # modified dates: the per-patient offset
    if vr == "TM":
        return Op.KEEP  # whole-day shifts leave times valid
    if vr == "SQ":
        return Op.KEEP  # the items are cleaned by the same rules
    if vr in FREE_TEXT_VRS or vr == "CS":
        return Op.CLEAN
    if vr in ("PN", "AE"):
        return Op.DUMMY
    if vr == "UI":
        return Op.UID
    if vr.startswith("O") or vr in ("UN", "US or OW", "OB or OW"):
        # Overlay and curve bitmaps can hold burned-in text: Clean Graphics keeps them only
        # when the pixel step examines (and cleans) them; tag-only profiles remove them.
        keep = option == Option.CLEAN_GRAPHICS.value and pixels_examined
        return Op.KEEP if keep else Op.REMOVE
    return Op.KEEP


def _vr_for(tag_text: str) -> str:
    match = TAG_PATTERN.match(tag_text)
    assert match is not None
    group, element = match.group(1), match.group(2)
    if "x" in group or "x" in element:
        pattern = (group + element).upper().replace("X", "x")
        for key, entry in RepeatersDictionary.items():
            if key.upper().replace("X", "x") == pattern:
                return str(entry[0])
        return "OB"  # curve data: binary
    tag = int(group + element, 16)
    if tag in DicomDictionary:
        return str(dictionary_VR(tag))
    return "UN"


def _compile_rule(
    rule: AttributeRule, options: frozenset[Option], pixels_examined: bool
) -> Rule:
    code, option = effective_action(rule, options)
    vr = _vr_for(rule.tag)
    vr = vr.split(" ")[0] if " or " in vr else vr
    return Rule(_op_for(code, vr, option, rule, pixels_examined), rule.keyword or "", code,
                option)


def compile_profile(profile: Profile) -> CompiledProfile:
    options = frozenset(profile.options)
    exact: dict[int, Rule] = {}
    patterns: list[PatternRule] = []
    by_tag = {rule.tag: rule for rule in profile.table}
    by_tag.update({rule.tag: rule for rule in profile.attributes})  # house rules win
    for tag_text, rule in by_tag.items():
        compiled = _compile_rule(rule, options, profile.pixel is not None)
        match = TAG_PATTERN.match(tag_text)
        assert match is not None
        hex_text = match.group(1) + match.group(2)
        if "x" in hex_text:
            mask = int("".join("0" if c == "x" else "F" for c in hex_text), 16)
            value = int(hex_text.replace("x", "0"), 16)
            patterns.append(PatternRule(mask, value, compiled))
        else:
            exact[int(hex_text, 16)] = compiled
    keep_private = Option.RETAIN_SAFE_PRIVATE in options
    private: dict[tuple[str, int | None, int], Rule] = {}
    if keep_private:
        for entry in profile.private.keep:
            op = {"K": Op.KEEP, "clean": Op.CLEAN, "X": Op.REMOVE, "U": Op.UID}[entry.action]
            group = int(entry.group, 16) if entry.group is not None else None
            private[(entry.creator.strip(), group, int(entry.element, 16))] = Rule(
                op, "", entry.action, Option.RETAIN_SAFE_PRIVATE.value
            )
    return CompiledProfile(exact, tuple(patterns), private, keep_private and bool(private),
                           options)


def describe_tag(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
