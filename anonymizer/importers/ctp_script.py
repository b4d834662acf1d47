"""A CTP DicomAnonymizer script as an Amana profile draft.

The script is XML (`<script>` with `<p>` parameters, `<e>` element rules, `<k>` group
keeps and `<r>` removals), read without entity expansion (defusedxml). Element rules:
@remove() -> X, @empty() -> Z, @keep() -> K, @hashuid(...) -> U, @hash/@hashname/
@hashptid(...) -> pseudonym, @incrementdate(...) -> shift_date (the profile's per-patient
offset replaces the script's @DATEINC). Anything else (@round, @require, @always,
@initials, @param, @if, constants, several functions in one rule) is reported. Disabled
rules (en="F") do nothing in CTP and are skipped. `<k t="gggg">` keeps the group's
attributes; `<r>` removals of private groups, unspecified elements, overlays and curves
are what Amana does by default.
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from pydicom.datadict import keyword_for_tag

from anonymizer.importers.draft import DraftBuilder, Finding, dictionary_tags

_SIMPLE = re.compile(r"^@(\w+)\((.*)\)$", re.DOTALL)
_ACTIONS = {
    "remove": "X",
    "empty": "Z",
    "keep": "K",
    "hashuid": "U",
    "hash": "pseudonym",
    "hashname": "pseudonym",
    "hashptid": "pseudonym",
    "incrementdate": "shift_date",
}
_REMOVALS = {
    "privategroups": "private elements are removed unless kept by creator and element",
    "unspecifiedelements": "anything a profile does not name is removed",
    "overlays": "overlays are removed unless a pixel section cleans them",
    "curves": "curves are always removed",
}


class ScriptError(ValueError):
    """The file is not a CTP anonymizer script."""


def _enabled(node: Element) -> bool:
    return str(node.get("en", "T")).upper() != "F"


def _element(builder: DraftBuilder, node: Element) -> None:
    t = str(node.get("t", "")).strip()
    script = (node.text or "").strip()
    source = f'<e t="{t}" n="{node.get("n", "")}">{script}</e>'
    if not _enabled(node):
        return
    if not re.fullmatch(r"[0-9A-Fa-f]{8}", t):
        builder.unmapped(source, "not a tag (gggggeeee)")
        return
    tag = int(t, 16)
    match = _SIMPLE.match(script)
    function = match.group(1).lower() if match else None
    if match is None or function not in _ACTIONS or "@" in match.group(2).replace(
        "@UIDROOT", "").replace("@DATEINC", ""):
        what = "an empty script" if not script else f"{script!r}"
        builder.unmapped(source, f"{what}: only @remove, @empty, @keep, @hashuid, @hash and "
                         "@incrementdate map to Amana actions")
        return
    action = _ACTIONS[function]
    if tag >> 16 & 1:
        if action == "X":
            builder.mapped.append(source)
            builder.by_default.append(Finding(source, _REMOVALS["privategroups"]))
        else:
            builder.unmapped(source, "a private element without its creator: Amana keeps "
                             "private elements by creator and element only")
        return
    if keyword_for_tag(tag) is None:
        builder.unmapped(source, "not an attribute of the DICOM dictionary")
        return
    if action == "pseudonym" and function != "hashuid":
        builder.differences.append(Finding(
            source, "pseudonym: a keyed HMAC of the linkage attributes (PatientID, "
            "PatientName) or of the value, not CTP's unkeyed hash"))
    builder.apply(source, [(tag, action)], explicit=True)


def _group_keep(builder: DraftBuilder, node: Element) -> None:
    t = str(node.get("t", "")).strip()
    source = f'<k t="{t}">'
    if not _enabled(node):
        return
    if not re.fullmatch(r"[0-9A-Fa-f]{4}", t):
        builder.unmapped(source, "not a group number")
        return
    group = int(t, 16)
    if group & 1:
        builder.unmapped(source, "a private group without creators: Amana keeps private "
                         "elements by creator and element only")
        return
    tags = [tag for tag in dictionary_tags() if tag >> 16 == group]
    builder.apply(source, [(tag, "K") for tag in tags], explicit=False)


def _removal(builder: DraftBuilder, node: Element) -> None:
    t = str(node.get("t", "")).strip()
    source = f'<r t="{t}">'
    if not _enabled(node):
        return
    if t.lower() in _REMOVALS:
        builder.mapped.append(source)
        builder.by_default.append(Finding(source, _REMOVALS[t.lower()]))
    else:
        builder.unmapped(source, "unknown removal")


def import_ctp(path: Path, builder: DraftBuilder) -> DraftBuilder:
    """Fill `builder` from the CTP DicomAnonymizer script at `path`."""
    try:
        root = ElementTree.parse(str(path)).getroot()
    except ElementTree.ParseError as exc:
        raise ScriptError(f"{path}: not well-formed XML ({exc})") from exc
    except Exception as exc:  # defusedxml's refusals (entities, DTDs) are not ParseErrors
        raise ScriptError(f"{path}: refused ({type(exc).__name__})") from exc
    if root.tag != "script":
        raise ScriptError(f"{path}: a CTP anonymizer script starts with <script>")
    parameters = [str(p.get("t", "")) for p in root.findall("p")]
    if parameters:
        builder.notes.append("parameters not carried over (Amana has its own key and date "
                             "offsets): " + ", ".join(parameters))
    for node in root:
        if node.tag == "e":
            _element(builder, node)
        elif node.tag == "k":
            _group_keep(builder, node)
        elif node.tag == "r":
            _removal(builder, node)
        elif node.tag != "p":
            builder.unmapped(f"<{node.tag}>", "unknown script element")
    builder.add_structure()
    return builder
