"""Generate profiles/dicom-basic.yaml and the committed reference copy of Table E.1-1.

Input: the machine-readable Table E.1-1 published by innolitics/dicom-standard
(standard/confidentiality_profile_attributes.json, MIT, Copyright 2017 Innolitics), whose
content is DICOM PS3.15 edition 2024b. Run:

    .venv/bin/python scripts/generate_basic_profile.py ../shared/data/ps315
    .venv/bin/python scripts/generate_basic_profile.py --schema   # only the JSON Schema

The generated files are committed; tests never need the source folder.

Every row of the table gets an explicit action (its Basic Profile column) and its option
cells. Attributes outside the table get a house rule, because Amana removes anything a
profile does not name: structural and numeric attributes are kept, UIDs that identify or
reference instances are remapped, free text is cleaned, names/AE titles/URLs and dates
are removed (dates follow the table's date options).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from pydicom.datadict import DicomDictionary

EDITION = "2024b"
SOURCE = (
    "innolitics/dicom-standard, standard/confidentiality_profile_attributes.json "
    "(content of DICOM PS3.15 Table E.1-1, edition 2024b)"
)
LICENCE = "MIT, Copyright (c) 2017 Innolitics, LLC (see profiles/reference/LICENSE-innolitics.txt)"

OPTION_KEYS = {
    "rtnSafePrivOpt": "retain_safe_private",
    "rtnUIDsOpt": "retain_uids",
    "rtnDevIdOpt": "retain_device_identity",
    "rtnInstIdOpt": "retain_institution_identity",
    "rtnPatCharsOpt": "retain_patient_characteristics",
    "rtnLongFullDatesOpt": "retain_long_full_dates",
    "rtnLongModifDatesOpt": "retain_long_modified_dates",
    "cleanDescOpt": "clean_descriptors",
    "cleanStructContOpt": "clean_structured_content",
    "cleanGraphOpt": "clean_graphics",
}
REFERENCE_COLUMNS = ["tag", "name", "basic_profile", *OPTION_KEYS.values()]

NUMERIC_BINARY = {"OF", "OD", "OL", "OV", "OW", "UV", "SV", "US or OW", "OB or OW"}
SAFE_OB = {"ICCProfile", "FillPattern", "CoordinateSystemAxisValues", "BadPixelImage"}
KEPT_VRS = {"AS", "AT", "CS", "DS", "FD", "FL", "IS", "SL", "SS", "UL", "US", "US or SS", "SQ"}
TEXT_VRS = {"LO", "SH", "ST", "LT", "UT", "UC"}
REMOVED_VRS = {"PN", "AE", "UR", "UN"}
DEFINITION_UIDS = {
    "CodingSchemeUID",
    "ContextGroupExtensionCreatorUID",
    "ContextUID",
    "MappingResourceUID",
    "CreatorVersionUID",
}
# Overlay structure (60xx) kept only with Clean Graphics; text in overlays is cleaned.
OVERLAY_RULES = [
    ("(60xx,0010)", "OverlayRows", "K"),
    ("(60xx,0011)", "OverlayColumns", "K"),
    ("(60xx,0015)", "NumberOfFramesInOverlay", "K"),
    ("(60xx,0022)", "OverlayDescription", "C"),
    ("(60xx,0040)", "OverlayType", "K"),
    ("(60xx,0045)", "OverlaySubtype", "K"),
    ("(60xx,0050)", "OverlayOrigin", "K"),
    ("(60xx,0051)", "ImageFrameOrigin", "K"),
    ("(60xx,0100)", "OverlayBitsAllocated", "K"),
    ("(60xx,0102)", "OverlayBitPosition", "K"),
    ("(60xx,1500)", "OverlayLabel", "C"),
]


def parse_tag(text: str) -> int:
    return int(text[1:5] + text[6:10], 16)


def fmt_tag(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def house_action(keyword: str, vr: str) -> tuple[str, dict[str, str]] | None:
    """The rule for a standard attribute outside Table E.1-1 (None: leave unnamed)."""
    if vr in KEPT_VRS:
        return "K", {}
    if vr == "UI":
        if "Class" in keyword or "TransferSyntax" in keyword or keyword in DEFINITION_UIDS:
            return "K", {}
        return "U", {"retain_uids": "K"}
    if vr in TEXT_VRS:
        return "clean", {}
    if vr in ("DA", "DT", "TM"):
        return "X", {"retain_long_full_dates": "K", "retain_long_modified_dates": "C"}
    if vr in NUMERIC_BINARY:
        return "K", {}
    if vr == "OB":
        return ("K", {}) if keyword in SAFE_OB else ("X", {})
    if vr in REMOVED_VRS:
        return "X", {}
    return None


def flow(entry: dict[str, object]) -> str:
    parts = []
    for key, value in entry.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k}: {v}" for k, v in value.items())
            parts.append(f"{key}: {{{inner}}}")
        elif key in ("tag", "action") or (isinstance(value, str) and "/" in value):
            parts.append(f'{key}: "{value}"')
        else:
            parts.append(f"{key}: {value}")
    return "  - {" + ", ".join(parts) + "}"


def main(source_dir: Path, repo: Path) -> None:
    rows = json.loads((source_dir / "confidentiality_profile_attributes.json").read_text())
    rows.sort(key=lambda r: r["tag"])
    (repo / "profiles/reference").mkdir(parents=True, exist_ok=True)
    with (repo / "profiles/reference/ps315_table_E1-1_2024b.csv").open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(REFERENCE_COLUMNS)
        for r in rows:
            writer.writerow(
                [r["tag"], r["name"], r["basicProfile"]]
                + [r.get(key, "") for key in OPTION_KEYS]
            )
    licence = (source_dir / "LICENSE.txt").read_text()
    (repo / "profiles/reference/LICENSE-innolitics.txt").write_text(
        "ps315_table_E1-1_2024b.csv is derived from innolitics/dicom-standard\n"
        "(standard/confidentiality_profile_attributes.json), itself derived from DICOM PS3.15\n"
        "Table E.1-1 (NEMA). Licence of the source:\n\n" + licence
    )

    table_lines: list[str] = []
    table_tags: set[int] = set()
    private_row: dict[str, str] | None = None
    for r in rows:
        options = {OPTION_KEYS[k]: r[k] for k in OPTION_KEYS if r.get(k)}
        if r["tag"].startswith("(GGGG"):
            private_row = {"action": r["basicProfile"], **options}
            continue
        entry: dict[str, object] = {"tag": r["tag"].replace("XX", "xx").replace("XXXX", "xxxx")}
        if "X" not in r["tag"]:
            tag = parse_tag(r["tag"])
            table_tags.add(tag)
            entry["keyword"] = DicomDictionary[tag][4]
        entry["action"] = r["basicProfile"]
        if options:
            entry["options"] = options
        table_lines.append(flow(entry))
    assert private_row is not None

    house_lines: list[str] = []
    for tag, (vr, _vm, _name, retired, keyword) in sorted(DicomDictionary.items()):
        if tag in table_tags or retired or (tag >> 16) in (0x0000, 0x0002, 0xFFFE):
            continue
        rule = house_action(keyword, vr)
        if rule is None:
            continue
        action, options = rule
        entry = {"tag": fmt_tag(tag), "keyword": keyword, "action": action}
        if options:
            entry["options"] = options
        house_lines.append(flow(entry))
    for pattern, keyword, graphics_action in OVERLAY_RULES:
        house_lines.append(
            flow(
                {
                    "tag": pattern,
                    "keyword": keyword,
                    "action": "X",
                    "options": {"clean_graphics": graphics_action},
                }
            )
        )

    private_options = {k: v for k, v in private_row.items() if k != "action"}
    text = f"""\
# yaml-language-server: $schema=schema/profile.schema.json
# GENERATED by scripts/generate_basic_profile.py - do not edit by hand; edit the generator.
#
# DICOM PS3.15 Basic Application Level Confidentiality Profile, Table E.1-1, edition {EDITION}.
# Source: {SOURCE}.
# Licence of the source: {LICENCE}.
# Content from the DICOM Standard (NEMA).
#
# `table` holds every row of Table E.1-1 with its Basic Profile action and its option cells,
# unchanged. `attributes` holds Amana's house rules for standard attributes the table does not
# list: Amana removes anything a profile does not name, so what must survive is named here.
name: dicom-basic
description: >-
  PS3.15 Basic Application Level Confidentiality Profile (Table E.1-1, {EDITION}), no option
  selected. Attributes outside the table: structure and measurements kept, instance UIDs
  remapped, free text cleaned, person names, AE titles and URLs removed.
standard:
  document: PS3.15 Annex E
  table: E.1-1
  edition: "{EDITION}"
  source: "{SOURCE}"
  licence: "{LICENCE}"
options: []
pseudonyms:
  linkage: [IssuerOfPatientID, PatientID]
  date_shift_days: {{min: -1095, max: -30}}
private:
  action: {private_row["action"]}
  options: {{{", ".join(f"{k}: {v}" for k, v in private_options.items())}}}
  keep: []
table:
{chr(10).join(table_lines)}
attributes:
{chr(10).join(house_lines)}
"""
    (repo / "profiles/dicom-basic.yaml").write_text(text)
    print(f"{len(table_lines) + 1} table rows, {len(house_lines)} house rules")


def write_schema(repo: Path) -> None:
    """The JSON Schema of the profile format, for editors (YAML language servers)."""
    sys.path.insert(0, str(repo))
    from anonymizer.profile_model import profile_json_schema

    (repo / "profiles/schema").mkdir(parents=True, exist_ok=True)
    (repo / "profiles/schema/profile.schema.json").write_text(
        json.dumps(profile_json_schema(), indent=2, ensure_ascii=False) + "\n"
    )


if __name__ == "__main__":
    repo = Path(__file__).resolve().parents[1]
    if sys.argv[1:] == ["--schema"]:
        write_schema(repo)
    else:
        main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/ps315"), repo)
        write_schema(repo)
