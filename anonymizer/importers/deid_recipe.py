"""A deid recipe (pydicom/deid), as deid's own parser reads it, as an Amana profile draft.

Header actions: REMOVE -> X, BLANK -> Z, KEEP -> K, REPLACE with a constant -> D (Amana
writes a dummy valid for the VR, not the recipe's text), REPLACE with a function or
variable -> shift_date on dates and U on UIDs, JITTER -> shift_date (the profile's
per-patient offset replaces the recipe's amount). ADD and LABEL have no equivalent.
Fields: keywords, tag numbers, `contains:`/`startswith:`/`endswith:` (matched, as deid
does, case-insensitively against each dictionary attribute's keyword and name),
`fields:` lists, and private elements by creator (`(gggg,"CREATOR",ee)`); `values:`
lists, `select:`, `except:` and `all` select by what an instance holds and are reported.
Filters: see region_rules.py. The core never imports deid: it walks the parse it is given.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from pydicom.datadict import DicomDictionary, keyword_for_tag

from anonymizer.importers.draft import (
    DraftBuilder,
    Finding,
    dictionary_tags,
    resolve_field,
    vr_of,
)
from anonymizer.importers.region_rules import (
    Label,
    label_rule,
    predicate_from_deid,
    why_not_converted,
)

_PRIVATE = re.compile(r'^\(?([0-9A-Fa-f]{4}),\s*"([^"]+)",\s*([0-9A-Fa-f]{2})\)?$')
_EXPANDERS = ("contains", "startswith", "endswith")
_DATE_VRS = ("DA", "DT")


def _expand(expander: str, expression: str) -> list[int]:
    if expander == "endswith":
        pattern = re.compile(f"({expression})$", re.IGNORECASE)
    elif expander == "startswith":
        pattern = re.compile(f"^({expression})", re.IGNORECASE)
    else:
        pattern = re.compile(expression, re.IGNORECASE)
    found = []
    for tag in dictionary_tags():
        keyword, name = keyword_for_tag(tag), DicomDictionary[tag][2]
        if keyword and (pattern.search(keyword) or pattern.search(name)):
            found.append(tag)
    return found


def _fields(field: str, recipe: Any) -> tuple[list[int], bool, str | None]:
    """(attributes, named explicitly, reason when it cannot be expressed)."""
    expander, _, expression = field.partition(":")
    if expression and expander.lower() in _EXPANDERS:
        return _expand(expander.lower(), expression), False, None
    if expression and expander.lower() == "fields":
        tags: list[int] = []
        for member in recipe.get_fields_lists(expression) or []:
            found, explicit, reason = _fields(str(member.get("field", "")), recipe)
            if reason is not None:
                return [], False, f"fields list {expression!r}: {reason}"
            tags += found
        return tags, False, None
    if expression and expander.lower() == "values":
        return [], False, ("a `values:` list selects attributes by the values an instance "
                           "holds; a profile names attributes")
    if expression and expander.lower() in ("select", "except"):
        return [], False, f"`{expander}:` selects by element properties at run time"
    if field.lower() == "all":
        return [], False, "`all` reaches every attribute an instance holds"
    tag = resolve_field(field)
    if tag is None:
        return [], False, "not a DICOM keyword or tag"
    return [tag], True, None


def _header(builder: DraftBuilder, recipe: Any) -> None:
    for entry in recipe.get_actions() or []:
        action = str(entry["action"]).upper()
        field = str(entry.get("field", ""))
        value = entry.get("value")
        source = f"{action} {field}" + (f" {value}" if value is not None else "")
        if action == "ADD":
            builder.unmapped(source, "ADD writes a new value; Amana writes only what the "
                             "profile keeps or derives (Patient Identity Removed and "
                             "De-identification Method are written by the engine)")
            continue
        if action not in ("REMOVE", "BLANK", "KEEP", "REPLACE", "JITTER"):
            builder.unmapped(source, f"action {action} has no Amana equivalent")
            continue
        private = _PRIVATE.match(field)
        if private is not None:
            _private(builder, source, action, private)
            continue
        tags, explicit, reason = _fields(field, recipe)
        if reason is not None:
            builder.unmapped(source, reason)
            continue
        if any(tag >> 16 & 1 for tag in tags):
            builder.unmapped(source, "a private tag without its creator: Amana keeps private "
                             "elements by creator and element only, and removes the rest")
            continue
        if action == "REMOVE" and not explicit:
            builder.remove_by_default(
                source, tags, f"{len(tags)} attribute(s) of the dictionary; no rule written")
            continue
        pairs = [(tag, _action_for(action, value, tag)) for tag in tags]
        mapped = [(tag, a) for tag, a in pairs if a is not None]
        if not mapped:
            builder.unmapped(source, "REPLACE with a function or variable of the recipe's "
                             "own code: only dates (shift_date) and UIDs (U) map")
            continue
        if action == "REPLACE" and not _computed(value):
            builder.differences.append(
                Finding(source, "D: Amana writes a dummy valid for the VR, not the "
                        "recipe's constant"))
        builder.apply(source, mapped, explicit)


def _computed(value: object) -> bool:
    return str(value).split(":", 1)[0] in ("func", "var", "deid_func")


def _action_for(action: str, value: object, tag: int) -> str | None:
    if action == "REMOVE":
        return "X"
    if action == "BLANK":
        return "Z"
    if action == "KEEP":
        return "K"
    if action == "JITTER":
        return "shift_date"
    if not _computed(value):
        return "D"
    vr = vr_of(tag)
    if vr in _DATE_VRS:
        return "shift_date"
    return "U" if vr == "UI" else None


def _private(builder: DraftBuilder, source: str, action: str, match: re.Match[str]) -> None:
    group, creator, element = match.group(1).upper(), match.group(2), match.group(3).upper()
    if action == "REMOVE":
        builder.mapped.append(source)
        builder.by_default.append(Finding(source, "private elements are removed unless kept"))
    elif action == "KEEP" and int(group, 16) % 2 == 1:
        builder.private_keep.append(
            {"creator": creator, "group": group, "element": element, "action": "K"})
        builder.mapped.append(source)
        builder.notes.append("private elements are kept: the draft selects the Retain Safe "
                             "Private option; check that each one is safe")
    else:
        builder.unmapped(source, f"{action} on a private element: only KEEP and REMOVE map")


def _filters(builder: DraftBuilder, recipe: Any, recipe_name: str) -> None:
    seen: set[str] = set()
    for section, labels in (recipe.get_filters() or {}).items():
        for item in labels:
            name = re.sub(r"^LABEL\s+", "", str(item.get("name", "")), flags=re.I).strip()
            label = Label(name=name, section=str(section))
            for keep, text in item.get("coordinates", []):
                kind = "keepcoordinates" if int(keep) else "coordinates"
                label.coordinates.append((kind, str(text)))
            source = f"%filter {section} LABEL {name}"
            try:
                when = predicate_from_deid(list(item.get("filters", [])))
                origin = f"{recipe_name}: {section} LABEL {name}"
                converted = label_rule(label, when, origin, seen, examine=True)
                if converted is not None:
                    _check_rule(converted[1])
            except ValueError as exc:
                builder.unmapped(source, f"cannot be expressed as a pixel rule: {exc}")
                continue
            if converted is None:
                builder.unmapped(source, why_not_converted(label))
                continue
            builder.pixel_rules.append(converted[1])
            builder.mapped.append(source)
            if section == "blacklist":
                builder.differences.append(Finding(
                    source, "deid flags the image; Amana examines it (OCR) instead"))


def _check_rule(rule: dict[str, Any]) -> None:
    from anonymizer.pixels.rules import RuleFileError, parse_rule_file

    try:
        parse_rule_file(yaml.safe_dump({"rules": [rule]}), "rule")
    except RuleFileError as exc:
        raise ValueError(str(exc).removeprefix("rule rule 1 ")) from exc


def import_deid(recipe: Any, recipe_name: str, builder: DraftBuilder) -> DraftBuilder:
    """Fill `builder` from `recipe`, deid's parse of a recipe (a `deid.config.DeidRecipe`,
    read by the shell: deid configures its logging from the environment on import)."""
    _header(builder, recipe)
    _filters(builder, recipe, recipe_name)
    builder.add_structure()
    return builder
