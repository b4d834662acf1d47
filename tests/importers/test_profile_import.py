"""`amana profile import`: deid recipes and CTP scripts become drafts that extend the floor,
load, de-identify, and come with a report of what did not map."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pydicom
import pytest
import yaml
from pydicom.data import get_testdata_file
from pydicom.datadict import keyword_for_tag
from typer.testing import CliRunner

from amana.cli_profile import profile_app
from amana.profile_import import import_source
from anonymizer.engine import Deidentifier, load_profile
from anonymizer.importers.draft import floor_from
from anonymizer.importers.region_rules import convert_texts
from anonymizer.pixels import lint_pixel_policy
from anonymizer.pseudonyms import key_from_bytes
from tests.paths import PROFILES_DIR, REPO_ROOT

FIXTURES = Path(__file__).parent / "fixtures"
RECIPES = ("deid.dicom", "deid.dicom.ultrasound", "deid.dicom.xray.chest")

def recipe_dir() -> Path:
    """The region-rule copies in ../shared when present (their licence is beside them),
    else the recipes shipped inside the installed deid package: never a skip."""
    shared = REPO_ROOT.parent / "shared" / "data" / "region-rules"
    if (shared / "deid.dicom").is_file():
        return shared
    import deid.data

    return Path(deid.data.__file__).parent


@pytest.fixture()
def profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "profiles"
    shutil.copytree(PROFILES_DIR, folder)
    monkeypatch.setenv("AMANA_PROFILES_DIR", str(folder))
    return folder


def original_name() -> str:
    return str(pydicom.dcmread(get_testdata_file("CT_small.dcm")).PatientName)


def run_import(kind: str, source: Path, out: Path) -> str:
    result = CliRunner().invoke(
        profile_app, ["import", "--from", kind, str(source), "--out", str(out)],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    return result.output


def sample(**values: str) -> bytes:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    path_bytes = pydicom.filebase.DicomBytesIO()
    ds.save_as(path_bytes, enforce_file_format=True)
    return path_bytes.getvalue()


def deidentify(profile_file: Path, data: bytes) -> pydicom.Dataset:
    engine = Deidentifier(load_profile(str(profile_file), profile_file.parent),
                          key_from_bytes(secrets.token_bytes(32)))
    outcome = engine.deidentify(data)
    return pydicom.dcmread(pydicom.filebase.DicomBytesIO(outcome.data))


@pytest.mark.parametrize("recipe", RECIPES)
def test_deid_recipes_become_loadable_drafts_with_a_report(profiles: Path, recipe: str) -> None:
    """Rule: each recipe deid ships imports to a draft that extends the floor, loads and
    lints (pixel rules included), and a report beside it lists what was not mapped; the
    command prints the mapped / not mapped summary."""
    out = profiles / "imported.yaml"
    output = run_import("deid", recipe_dir() / recipe, out)
    assert "mapped" in output and "not mapped" in output
    document = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert document["extends"] == "floor"
    profile = load_profile(str(out), profiles)
    if profile.pixel is not None:
        assert lint_pixel_policy(profile.pixel) == [] or all(
            "OCR languages" in p for p in lint_pixel_policy(profile.pixel))
    report = (profiles / "imported.import-report.md").read_text(encoding="utf-8")
    assert "## Not mapped" in report
    assert "whitelist" in report  # every shipped recipe has a "marked clean" LABEL


def test_deid_draft_handles_the_mapped_attributes(profiles: Path) -> None:
    """Rule: a sample de-identified with the draft of deid.dicom has what the recipe
    removes removed, its identity UIDs replaced, its image intact; ADD lines are reported,
    not applied."""
    out = profiles / "deid-default.yaml"
    run_import("deid", recipe_dir() / "deid.dicom", out)
    original = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    data = sample(OperatorsName="Testperson^Made", ReferringPhysicianName="Doe^Jane")
    result = deidentify(out, data)
    # What the recipe removes is gone, or (where the floor says pseudonym) replaced: no
    # original value survives either way.
    for keyword in ("PatientName", "PatientID", "OperatorsName", "ReferringPhysicianName",
                    "StudyDate", "AccessionNumber", "PatientBirthDate"):
        before = str(pydicom.dcmread(pydicom.filebase.DicomBytesIO(data)).get(keyword, ""))
        assert not before or str(result.get(keyword, "")) != before, keyword
    assert result.StudyInstanceUID != original.StudyInstanceUID
    assert result.SOPClassUID == original.SOPClassUID
    assert result.PixelData == original.PixelData
    assert "IssuerOfPatientID" not in result  # ADD IssuerOfPatientID STARR: not mapped
    report = (profiles / "deid-default.import-report.md").read_text(encoding="utf-8")
    assert "`ADD IssuerOfPatientID STARR`" in report
    assert "SOPInstanceUID: X -> U" in report


def test_pixel_filters_convert_as_the_region_rule_script_does(profiles: Path) -> None:
    """Rule: one converter: the pixel rules imported through deid's parser equal those the
    region-rule script makes from the same recipe text (label, predicate, regions)."""
    source = recipe_dir() / "deid.dicom"
    builder = import_source("deid", source, "x", floor_from(profiles))
    converted = convert_texts([(source.name, source.read_text(encoding="utf-8"))])
    imported = [(r["label"], r["when"], r["regions"]) for r in builder.pixel_rules
                if r["action"] == "mask"]
    expected = [(r["label"], r["when"], r["regions"]) for r in converted["device-regions"]]
    assert imported == expected and len(expected) > 50


RECIPE = """\
FORMAT dicom

%fields staff
FIELD startswith:Operator
FIELD PerformingPhysicianName

%values made_up_names
SPLIT PatientID by="^";minlength=4

%filter graylist

LABEL Example device
  contains Modality CT
  + contains Manufacturer ACME
  coordinates 0,0,100,20

%header

BLANK fields:staff
BLANK StudyDescription
KEEP PatientSex
KEEP PatientName
KEEP startswith:PatientBirth
REPLACE SeriesDescription ANONYMIZED
REPLACE AcquisitionDate func:new_date
JITTER ContentDate 14
JITTER StudyTime 2
ADD PatientIdentityRemoved YES
BLANK values:made_up_names
KEEP (0029,"ACME PRIVATE 1.0",10)
KEEP (0029,1010)
"""


def test_deid_header_actions_map_and_the_floor_refuses_keeps(profiles: Path) -> None:
    """Rule: BLANK -> Z, KEEP -> K, REPLACE constant -> D, REPLACE func and
    JITTER on dates -> shift_date, `fields:` lists expand, private elements are kept by
    creator; ADD, `values:` lists, private tags without creator and time jitter are
    reported; KEEP of a floor attribute is dropped and reported as refused by the floor."""
    source = profiles.parent / "site.deid"
    source.write_text(RECIPE, encoding="utf-8")
    out = profiles / "site.yaml"
    run_import("deid", source, out)
    document = yaml.safe_load(out.read_text(encoding="utf-8"))
    actions = {r["keyword"]: r["action"] for r in document["attributes"]}
    assert actions["OperatorsName"] == "Z" and actions["PerformingPhysicianName"] == "Z"
    assert actions["StudyDescription"] == "Z"
    assert actions["PatientSex"] == "K"
    assert actions["SeriesDescription"] == "D"
    assert actions["AcquisitionDate"] == "shift_date"
    assert actions["ContentDate"] == "shift_date"
    assert "PatientName" not in actions and "PatientBirthDate" not in actions
    # The floor names the birth time as well: `KEEP startswith:PatientBirth` reaches it and
    # is refused there too.
    assert "PatientBirthTime" not in actions
    assert document["private"]["keep"] == [
        {"creator": "ACME PRIVATE 1.0", "group": "0029", "element": "10", "action": "K"}]
    assert "retain_safe_private" in document["options"]
    rules = yaml.safe_load((profiles / "pixel" / "site-regions.yaml").read_text())["rules"]
    assert rules[0]["regions"] == [[0, 0, 100, 20]]
    report = (profiles / "site.import-report.md").read_text(encoding="utf-8")
    refused = report.split("## Refused by the floor")[1].split("##")[0]
    assert "PatientName" in refused and "PatientBirthDate" in refused
    not_mapped = report.split("## Not mapped")[1].split("##")[0]
    for rule in ("ADD PatientIdentityRemoved YES", "BLANK values:made_up_names",
                 "KEEP (0029,1010)", "KEEP PatientName"):
        assert f"`{rule}`" in not_mapped, rule
    assert "StudyTime: skipped" in report

    result = deidentify(out, sample(PatientSex="F", StudyDescription="Made up study"))
    assert result.PatientSex == "F" and result.StudyDescription == ""
    assert str(result.get("PatientName", "")) != str(original_name())


def test_ctp_script_maps_and_reports(profiles: Path) -> None:
    """Rule: CTP @remove -> X, @empty -> Z, @keep -> K, @hashuid -> U, @hash -> pseudonym,
    @incrementdate -> shift_date, group keeps expand; @round, @require, @always,
    @initials, private elements without creator and time increments are reported;
    disabled rules are skipped; keeps of floor attributes are refused; the draft
    de-identifies a sample accordingly."""
    out = profiles / "ctp-site.yaml"
    output = run_import("ctp", FIXTURES / "ctp-site.xml", out)
    assert "not mapped" in output
    document = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert document["extends"] == "floor"
    actions = {r["keyword"]: r["action"] for r in document["attributes"]}
    assert actions["SOPInstanceUID"] == "U"
    assert actions["StudyDate"] == "shift_date"
    assert actions["AccessionNumber"] == "pseudonym"
    assert actions["PatientID"] == "pseudonym"
    assert actions["ReferringPhysicianName"] == "Z"
    assert actions["PatientBirthDate"] == "X"
    assert actions["PatientSex"] == "K"
    assert actions["KVP"] == "K"  # <k t="0018">
    # A keep is refused exactly where the floor names the attribute (device identity is not
    # the floor's: the national profile keeps the machines).
    floor = floor_from(profiles)
    on_floor = {keyword_for_tag(tag) for tag in floor.tags}
    assert "PatientName" in on_floor and "PatientName" not in actions
    assert ("DeviceSerialNumber" in on_floor) == ("DeviceSerialNumber" not in actions)
    assert "OperatorsName" not in actions  # en="F"
    report = (profiles / "ctp-site.import-report.md").read_text(encoding="utf-8")
    not_mapped = report.split("## Not mapped")[1].split("##")[0]
    for function in ("@round(this,5)", "@require()", "@always()", "@initials(this)",
                     'n="PrivateElement"'):
        assert function in not_mapped, function
    refused = report.split("## Refused by the floor")[1].split("##")[0]
    assert "PatientName" in refused
    assert ("DeviceSerialNumber" in refused) == ("DeviceSerialNumber" in on_floor)
    assert "StudyTime: skipped" in report

    original = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    result = deidentify(out, sample(AccessionNumber="A123456", PatientSex="M"))
    assert str(result.get("PatientName", "")) != str(original.PatientName)
    assert "PatientBirthDate" not in result
    assert result.PatientID and result.PatientID != original.PatientID
    assert result.AccessionNumber != "A123456"
    assert result.StudyDate != original.StudyDate
    assert result.PatientSex == "M" and result.KVP == original.KVP


def test_ctp_script_with_entities_is_refused(profiles: Path, tmp_path: Path) -> None:
    """Rule: a script declaring entities (entity expansion) is refused, not expanded."""
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<?xml version="1.0"?>\n<!DOCTYPE s [<!ENTITY a "aaaaaaaaaa">'
                    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
                    '<script><e en="T" t="00100010" n="PatientName">&b;</e></script>\n')
    result = CliRunner().invoke(profile_app, ["import", "--from", "ctp", str(bomb),
                                              "--out", str(profiles / "bomb.yaml")])
    assert result.exit_code == 1
    assert not (profiles / "bomb.yaml").exists()


def test_without_floor_file_the_basic_profile_identifiers_are_the_floor(
    profiles: Path,
) -> None:
    """Rule: with no floor.yaml, K is refused on the PS3.15 basic profile's X/Z/D/U
    attributes, and the report says which floor was used."""
    (profiles / "floor.yaml").unlink()
    floor = floor_from(profiles)
    assert "fell back" in floor.source
    builder = import_source("ctp", FIXTURES / "ctp-site.xml", "x", floor)
    assert any("PatientName" in f.reason for f in builder.refused)
    assert "fell back" in builder.report()
