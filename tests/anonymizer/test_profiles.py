"""Profiles are data: schema, line-numbered errors, inheritance, versions, the JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from amana.cli_profile import profile_app
from anonymizer.engine import ProfileError, load_profile
from anonymizer.profile_model import Option, profile_json_schema


def write(folder: Path, name: str, text: str) -> Path:
    file = folder / f"{name}.yaml"
    file.write_text(text, encoding="utf-8")
    return file


def child(tmp_path: Path, profiles_dir: Path, body: str) -> Path:
    """A profile extending the real basic profile, in a temporary folder."""
    (tmp_path / "dicom-basic.yaml").write_text(
        (profiles_dir / "dicom-basic.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    return write(tmp_path, "site", "name: site\nextends: dicom-basic\n" + body)


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ("optionz: []\n", 3, "unknown key 'optionz'"),
        ("options: [retain_everything]\n", 3, "retain_everything"),
        ("attributes:\n  - {tag: \"(0010,0010)\", keyword: PatientNam, action: X}\n", 4,
         "unknown keyword 'PatientNam'"),
        ("attributes:\n  - {tag: \"(0010,0020)\", keyword: PatientName, action: X}\n", 4,
         "keyword 'PatientName' is (0010,0010), not (0010,0020)"),
        ("attributes:\n  - {tag: \"(0010,0010)\", action: scramble}\n", 4, "scramble"),
        ("attributes:\n  - tag: \"(0010,0010)\"\n    action: X\n    colour: red\n", 6,
         "unknown key 'colour'"),
        ("attributes:\n  - {tag: \"(0010,0010)\", action: X, options: {retain_all: K}}\n", 4,
         "retain_all"),
        ("attributes:\n  - {tag: \"(0010,0010)\", action: generalize}\n", 4, "method"),
        ("attributes:\n  - {tag: \"(0010,0010)\", action: X}\n  - {tag: \"(0010,0010)\", "
         "action: K}\n", 5, "named twice"),
        ("pseudonyms:\n  date_shift_days: {min: 10, max: -10}\n", 4, "min must not exceed"),
    ],
)
def test_broken_profiles_name_file_line_and_reason(
    tmp_path: Path, profiles_dir: Path, body: str, line: int, reason: str
) -> None:
    """Rule: loading fails with file, line and reason on an unknown key, keyword, action or
    option, and on a keyword/tag mismatch."""
    file = child(tmp_path, profiles_dir, body)
    with pytest.raises(ProfileError) as caught:
        load_profile(str(file), tmp_path)
    error = caught.value
    assert error.file == str(file)
    assert error.line == line, str(error)
    assert reason in error.reason
    assert str(error).startswith(f"{file}:{line}: ")


def test_lint_command_names_line_and_problem(tmp_path: Path, profiles_dir: Path) -> None:
    """Rule: `amana profile lint` on a broken profile prints file:line: problem, exits 1."""
    file = child(tmp_path, profiles_dir, "attributes:\n  - {tag: \"(0010,0010)\", "
                 "keyword: PatientsName, action: X}\n")
    result = CliRunner().invoke(profile_app, ["lint", str(file)])
    assert result.exit_code == 1
    assert f"{file}:4:" in result.output.replace("\n", "")
    assert "unknown keyword 'PatientsName'" in result.output.replace("\n", "")
    good = CliRunner().invoke(profile_app, ["lint", str(profiles_dir / "ma-national.yaml")])
    assert good.exit_code == 0, good.output
    assert "OK" in good.output


def test_extends_inherits_and_overrides(tmp_path: Path, profiles_dir: Path) -> None:
    """Rule: a child profile inherits every rule of its parent; its own rules win by tag."""
    file = child(
        tmp_path, profiles_dir,
        "options: [retain_uids]\nattributes:\n  - {tag: \"(0008,0070)\", keyword: Manufacturer, "
        "action: X}\n",
    )
    profile = load_profile(str(file), tmp_path)
    basic = load_profile("dicom-basic", profiles_dir)
    assert len(profile.table) == len(basic.table)
    assert profile.options == (Option.RETAIN_UIDS,)
    rules = {r.tag: r for r in profile.attributes}
    assert rules["(0008,0070)"].action == "X"
    assert rules["(0028,0010)"].action == "K"  # inherited house rule
    assert profile.extends == "dicom-basic"


def test_version_is_the_digest_of_resolved_content(tmp_path: Path, profiles_dir: Path) -> None:
    """Rule: a profile's version changes with its resolved content and only with it."""
    first = child(tmp_path, profiles_dir, "options: [retain_uids]\n")
    version_one = load_profile(str(first), tmp_path).version
    first.write_text(first.read_text() + "# a comment changes nothing\n")
    assert load_profile(str(first), tmp_path).version == version_one
    first.write_text(first.read_text().replace("retain_uids", "clean_graphics"))
    assert load_profile(str(first), tmp_path).version != version_one
    assert len(version_one) == 16


def test_profiles_in_repo_load(profiles_dir: Path) -> None:
    """Rule: the committed profiles are valid; ma-national extends dicom-basic with the six
    options the national choice names."""
    national = load_profile("ma-national", profiles_dir)
    assert national.extends == "dicom-basic"
    assert set(national.options) == {
        Option.RETAIN_PATIENT_CHARACTERISTICS, Option.RETAIN_DEVICE_IDENTITY,
        Option.RETAIN_LONG_MODIFIED_DATES, Option.CLEAN_DESCRIPTORS,
        Option.CLEAN_STRUCTURED_CONTENT, Option.CLEAN_GRAPHICS,
    }
    assert national.regions["chu ibn rochd"] == "Casablanca-Settat"
    basic = load_profile("dicom-basic", profiles_dir)
    assert basic.standard is not None and basic.standard.edition == "2024b"
    assert "innolitics" in basic.standard.source and "MIT" in basic.standard.licence


def test_committed_json_schema_is_current(profiles_dir: Path) -> None:
    """Rule: profiles/schema/ holds the JSON Schema of the current profile model (re-export
    with `scripts/generate_basic_profile.py --schema`)."""
    committed = json.loads((profiles_dir / "schema/profile.schema.json").read_text())
    assert committed == json.loads(json.dumps(profile_json_schema()))
    assert committed["additionalProperties"] is False


def test_profile_commands_list_show_diff(profiles_dir: Path) -> None:
    """Rule: stewards can list, show and diff profiles from the command line."""
    runner = CliRunner()
    listed = runner.invoke(profile_app, ["list"])
    assert listed.exit_code == 0 and "ma-national" in listed.output
    shown = runner.invoke(profile_app, ["show", "ma-national"])
    assert shown.exit_code == 0 and "retain_patient_characteristics" in shown.output
    diffed = runner.invoke(profile_app, ["diff", "dicom-basic", "ma-national"], terminal_width=200)
    assert diffed.exit_code == 0, diffed.output
    assert "PatientID" in diffed.output and "pseudonym" in diffed.output


@pytest.mark.ocr
def test_explain_masks_identifying_values(tmp_path: Path) -> None:
    """Rule: `amana profile explain` lists every attribute with before (identifying values
    masked), action and after; no original name or ID is printed."""
    from tests.anonymizer.factory import Identity, ct_instance, to_bytes

    who = Identity()
    file = tmp_path / "one.dcm"
    file.write_bytes(to_bytes(ct_instance(who)))
    result = CliRunner().invoke(profile_app, ["explain", str(file)], terminal_width=250)
    assert result.exit_code == 0, result.output
    for value in (who.family, who.given, who.patient_id, who.accession, who.station):
        assert value not in result.output
    assert "PatientName" in result.output and "pseudonym" in result.output
    assert "<masked PN" in result.output
    assert "archived" in result.output
