"""dicom-basic against PS3.15 Table E.1-1 (2024b), and every profile's conformance table."""

from __future__ import annotations

from pathlib import Path

import pytest

from anonymizer.conformance import (
    PRIVATE_ROW,
    conformance_table,
    normalize_tag,
    read_reference,
)
from anonymizer.engine import load_profile
from anonymizer.profile_model import OPTION_ORDER

REFERENCE = "reference/ps315_table_E1-1_2024b.csv"


def test_reference_copy_names_its_source_and_licence(profiles_dir: Path) -> None:
    """Rule: the committed copy of the table keeps its MIT attribution."""
    notice = (profiles_dir / "reference/LICENSE-innolitics.txt").read_text()
    assert "innolitics/dicom-standard" in notice and "MIT" in notice.upper()
    assert len(read_reference(profiles_dir / REFERENCE)) == 621


def test_every_table_row_has_its_explicit_action(profiles_dir: Path) -> None:
    """Rule: dicom-basic names every row of Table E.1-1 with the table's Basic Profile action
    and exactly the table's option cells; the private-attributes row is the private policy."""
    basic = load_profile("dicom-basic", profiles_dir)
    rules = {rule.tag: rule for rule in basic.table}
    reference = read_reference(profiles_dir / REFERENCE)
    for row in reference:
        if row.tag == PRIVATE_ROW:
            assert basic.private.action == row.basic_profile
            assert {k.value: v for k, v in basic.private.options.items()} == row.options
            continue
        rule = rules.pop(normalize_tag(row.tag))
        assert rule.action.value == row.basic_profile, row.tag
        assert {k.value: v for k, v in rule.options.items()} == row.options, row.tag
    assert rules == {}, "rows in the profile that are not in the table"


@pytest.mark.parametrize("name", ["dicom-basic", "ma-national"])
def test_conformance_table_follows_the_standard(profiles_dir: Path, name: str) -> None:
    """Rule: in each profile's conformance table, every row applies what the table says for
    the selected options (the option cell that decides, else the Basic Profile action),
    unless the profile overrides it; overrides appear only where a profile file names them,
    and no override keeps a value the table would remove."""
    profile = load_profile(name, profiles_dir)
    reference = {normalize_tag(r.tag): r for r in read_reference(profiles_dir / REFERENCE)}
    selected = set(profile.options)
    for row in conformance_table(profile):
        if row.tag == PRIVATE_ROW:
            assert row.operation == "remove"
            continue
        standard = reference[row.tag]
        expected, option = standard.basic_profile, None
        for candidate in OPTION_ORDER:
            if candidate in selected and candidate.value in standard.options:
                expected, option = standard.options[candidate.value], candidate.value
                break
        assert row.table_action == expected, row
        if not row.override:
            assert (row.applied_action, row.option) == (expected, option), row
        elif row.operation == "keep":
            assert expected == "K", f"{row.tag} kept although the table does not keep it"


def test_national_overrides_are_the_documented_ones(profiles_dir: Path) -> None:
    """Rule: ma-national departs from the table only where its file says so (device serials,
    station names, pseudonyms, region, age generalization, ethnic group)."""
    national = load_profile("ma-national", profiles_dir)
    overridden = {row.keyword for row in conformance_table(national) if row.override}
    text = (profiles_dir / "ma-national.yaml").read_text()
    assert overridden
    for keyword in overridden:
        assert f"keyword: {keyword}," in text
    assert {"PatientID", "PatientName", "StationName", "DeviceSerialNumber",
            "InstitutionName", "PatientAge"} <= overridden


def test_conformance_command_writes_the_table(tmp_path: Path) -> None:
    """Rule: `amana profile conformance NAME --csv FILE` exports the table for auditors."""
    import csv

    from typer.testing import CliRunner

    from amana.cli_profile import profile_app

    target = tmp_path / "conformance.csv"
    result = CliRunner().invoke(profile_app, ["conformance", "ma-national", "--csv", str(target)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(target.open()))
    assert len(rows) == 621
    patient_id = next(r for r in rows if r["keyword"] == "PatientID")
    assert (patient_id["applied_action"], patient_id["override"]) == ("pseudonym", "yes")
