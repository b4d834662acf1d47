"""A profile draft being built from another tool's rules, and the report of what did not map.

The importers (deid_recipe.py, ctp_script.py) translate one source rule at a time into
calls on `DraftBuilder`; it owns the policy every import shares:

- The floor: a rule that would keep (K) a floor attribute is dropped and reported as
  refused by the floor, whatever the source tool allowed.
- Conflicts: a rule naming an attribute beats one reaching it through an expression; two
  rules at the same level resolve to the more protective action, and the report says so.
- Structure: deid and CTP keep what a recipe does not name, Amana removes it. The draft
  names what every image needs (pixel module, SOP class, instance UIDs) so that a draft
  produces valid instances; a removal of an instance's own UIDs becomes U, since an
  instance without them cannot be stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.datadict import DicomDictionary, dictionary_VR, keyword_for_tag, tag_for_keyword

# Lower is more protective: the winner when two rules of one level name one attribute.
PROTECTION = {"X": 0, "Z": 1, "D": 2, "U": 3, "pseudonym": 4, "shift_date": 5, "K": 6}

# The engine refuses an instance without these; removing them is replacing them.
IDENTITY_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")

# What an image needs to stay an image; none of it identifies anyone.
STRUCTURE: tuple[tuple[str, str], ...] = (
    *((keyword, "U") for keyword in IDENTITY_UIDS),
    ("FrameOfReferenceUID", "U"),
    ("SpecificCharacterSet", "K"),
    ("ImageType", "K"),
    ("Modality", "K"),
    ("SamplesPerPixel", "K"),
    ("PhotometricInterpretation", "K"),
    ("PlanarConfiguration", "K"),
    ("NumberOfFrames", "K"),
    ("Rows", "K"),
    ("Columns", "K"),
    ("PixelSpacing", "K"),
    ("PixelAspectRatio", "K"),
    ("BitsAllocated", "K"),
    ("BitsStored", "K"),
    ("HighBit", "K"),
    ("PixelRepresentation", "K"),
    ("RescaleIntercept", "K"),
    ("RescaleSlope", "K"),
    ("RescaleType", "K"),
    ("WindowCenter", "K"),
    ("WindowWidth", "K"),
    ("SliceThickness", "K"),
    ("ImagePositionPatient", "K"),
    ("ImageOrientationPatient", "K"),
    ("PixelData", "K"),
)


def tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def vr_of(tag: int) -> str:
    try:
        return str(dictionary_VR(tag)).split(" ")[0]
    except KeyError:
        return "UN"


def resolve_field(text: str) -> int | None:
    """A public attribute named by keyword, `(gggg,eeee)`, `gggg,eeee` or `ggggeeee`."""
    text = text.strip()
    tag = tag_for_keyword(text)
    if tag is not None:
        return int(tag)
    digits = text.strip("()").replace(",", "").replace(" ", "")
    if len(digits) == 8 and all(c in "0123456789abcdefABCDEF" for c in digits):
        return int(digits, 16)
    return None


def dictionary_tags() -> list[int]:
    """Every concrete public attribute of the data dictionary that has a keyword
    (repeating groups, file meta and item delimiters aside)."""
    return sorted(tag for tag, entry in DicomDictionary.items()
                  if entry[4] and (tag >> 16) not in (0x0002, 0xFFFE))


@dataclass(frozen=True)
class Floor:
    """What a draft may never keep, and where that list came from (for the report)."""

    tags: frozenset[int]
    source: str


@dataclass(frozen=True)
class Finding:
    rule: str
    reason: str


@dataclass
class _Entry:
    action: str
    explicit: bool
    sources: list[str]


@dataclass
class DraftBuilder:
    name: str
    origin: str  # "deid recipe deid.dicom", for the description and the report
    floor: Floor
    entries: dict[int, _Entry] = field(default_factory=dict)
    private_keep: list[dict[str, str]] = field(default_factory=list)
    pixel_rules: list[dict[str, Any]] = field(default_factory=list)
    mapped: list[str] = field(default_factory=list)
    not_mapped: list[Finding] = field(default_factory=list)
    refused: list[Finding] = field(default_factory=list)
    differences: list[Finding] = field(default_factory=list)
    by_default: list[Finding] = field(default_factory=list)
    added: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _named: set[int] = field(default_factory=set)
    _removed_by_default: set[int] = field(default_factory=set)

    def apply(self, source: str, actions: list[tuple[int, str]], explicit: bool) -> None:
        """Map one source rule onto (attribute, action) pairs; counted as mapped if any
        attribute took it."""
        refused_before = len(self.refused)
        taken = sum(self._set(source, tag, action, explicit) for tag, action in actions)
        if taken:
            self.mapped.append(source)
        elif actions and len(self.refused) - refused_before == len(actions):
            self.not_mapped.append(Finding(source, "refused by the floor"))
        else:
            self.not_mapped.append(Finding(source, "no attribute it reaches can take it"))

    def remove_by_default(self, source: str, tags: list[int], reason: str) -> None:
        """A removal through an expression: Amana removes unnamed attributes anyway, but
        not those the floor names (they have a rule of their own)."""
        for tag in tags:
            if tag in self.entries or tag in self._named:
                continue
            if keyword_for_tag(tag) in IDENTITY_UIDS:
                self._set(source, tag, "X", explicit=False)
            elif tag in self.floor.tags:
                # The floor names it with its own (weakest allowed) action, which a draft
                # extending the floor inherits: the source's removal must be written out.
                self._set(source, tag, "X", explicit=True)
            else:
                self._removed_by_default.add(tag)
        self.mapped.append(source)
        self.by_default.append(Finding(source, reason))

    def unmapped(self, source: str, reason: str) -> None:
        self.not_mapped.append(Finding(source, reason))

    def _set(self, source: str, tag: int, action: str, explicit: bool) -> int:
        keyword = keyword_for_tag(tag) or tag_text(tag)
        if action == "K" and tag in self.floor.tags:
            self.refused.append(Finding(source, f"{keyword}: kept by the source, on the floor"))
            return 0
        if action in ("X", "Z") and keyword in IDENTITY_UIDS:
            self.differences.append(Finding(
                source, f"{keyword}: {action} -> U (an instance cannot be stored without it; "
                "replacing it breaks the link to the original as removing it would)"))
            action = "U"
        if action == "shift_date" and vr_of(tag) not in ("DA", "DT"):
            self.differences.append(Finding(
                source, f"{keyword}: skipped, a {vr_of(tag)} attribute (Amana shifts dates, "
                "DA and DT; times are kept)"))
            return 0
        if explicit:
            self._named.add(tag)
        current = self.entries.get(tag)
        if current is None or (explicit and not current.explicit):
            self.entries[tag] = _Entry(action, explicit, [source])
            return 1
        if current.explicit and not explicit:
            return 1  # the rule naming the attribute stands; the expression agrees or yields
        if current.action != action:
            winner = min(current.action, action, key=lambda a: PROTECTION[a])
            self.differences.append(Finding(
                source, f"{keyword}: also {current.action} by {current.sources[0]!r}; "
                f"the more protective {winner} is kept"))
            current.action = winner
        current.sources.append(source)
        return 1

    def add_structure(self) -> None:
        """Name what an image needs and the source left to its tool's keep-by-default."""
        added = []
        for keyword, action in STRUCTURE:
            tag = tag_for_keyword(keyword)
            assert tag is not None
            if tag in self.entries or tag in self._removed_by_default or tag in self.floor.tags:
                continue
            self.entries[tag] = _Entry(action, False, ["importer: image structure"])
            added.append(f"{keyword} {action}")
        if added:
            self.added.append(Finding(
                "image structure", "the source keeps what it does not name, Amana removes "
                "it; named so that images stay valid: " + ", ".join(added)))

    def profile_document(self) -> dict[str, Any]:
        attributes = []
        for tag in sorted(self.entries):
            entry = self.entries[tag]
            rule: dict[str, Any] = {"tag": tag_text(tag)}
            keyword = keyword_for_tag(tag)
            if keyword:
                rule["keyword"] = keyword
            rule["action"] = entry.action
            rule["note"] = "; ".join(dict.fromkeys(entry.sources))[:200]
            attributes.append(rule)
        document: dict[str, Any] = {
            "name": self.name,
            "description": f"Draft imported from the {self.origin} by `amana profile import`; "
            "review it and its report before use.",
            "extends": "floor",
        }
        if self.private_keep:
            document["options"] = ["retain_safe_private"]
            document["private"] = {"keep": self.private_keep}
        if self.pixel_rules:
            document["pixel"] = {"rules": [self.pixel_file_name]}
        document["attributes"] = attributes
        return document

    @property
    def pixel_file_name(self) -> str:
        # rule file names are restricted (anonymizer/pixels/rules.py); profile names are not
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.name).strip("-.") + "-regions"

    def pixel_document(self) -> dict[str, Any]:
        return {
            "description": f"Pixel rules imported from the {self.origin}",
            "rules": self.pixel_rules,
        }

    def report(self) -> str:
        lines = [
            f"# Import report: {self.name}",
            "",
            f"Source: {self.origin}. Floor: {self.floor.source}.",
            "",
            f"Mapped {len(self.mapped)}, not mapped {len(self.not_mapped)} "
            f"(refused by the floor: {len(self.refused)} attribute(s)).",
            "",
        ]
        lines += [f"- {note}" for note in self.notes]
        sections = (
            ("Not mapped", self.not_mapped),
            ("Refused by the floor", self.refused),
            ("Mapped with a difference", self.differences),
            ("Mapped by Amana's default (anything not named is removed)", self.by_default),
            ("Added by the importer", self.added),
        )
        for title, findings in sections:
            lines += ["", f"## {title} ({len(findings)})", ""]
            lines += [f"- `{f.rule}`: {f.reason}" for f in findings] or ["- none"]
        return "\n".join(lines) + "\n"


def floor_from(profiles_dir: Path) -> Floor:
    """The floor's attributes: floor.yaml through the loader when present; otherwise the
    attributes PS3.15's basic profile removes, empties, dummies or replaces."""
    from anonymizer.profile_loader import ProfileError, load_profile_file

    floor_file = profiles_dir / "floor.yaml"
    if floor_file.is_file():
        profile = load_profile_file(floor_file)
        rules = (*profile.table, *profile.attributes)
        tags = {int(r.tag[1:5] + r.tag[6:10], 16) for r in rules
                if "x" not in r.tag and r.action.value != "K"}
        return Floor(frozenset(tags), f"{floor_file.name} ({len(tags)} attributes)")
    basic = profiles_dir / "dicom-basic.yaml"
    try:
        table = load_profile_file(basic).table
    except ProfileError as exc:
        raise ProfileError(basic, None, f"no floor.yaml and no basic profile: {exc}") from exc
    tags = {int(r.tag[1:5] + r.tag[6:10], 16) for r in table
            if "x" not in r.tag and r.action.value not in ("K", "C")}
    return Floor(frozenset(tags), "no floor.yaml in the profiles folder: fell back to the "
                 f"PS3.15 basic profile's X/Z/D/U attributes ({len(tags)})")
