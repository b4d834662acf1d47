"""What `amana profile explain` (and the dry run, through the same functions) tells a
steward: before-values without PHI, and what the pixel step does to the sample."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import UltrasoundImageStorage
from typer.testing import CliRunner

from amana import cli_profile
from amana.cli_profile import profile_app
from anonymizer.engine import load_profile
from anonymizer.explain import explain_cells
from anonymizer.pixels import PixelPolicy, bind_rules_dir
from anonymizer.pixels.plan import pixel_plan
from anonymizer.profile_model import Profile
from anonymizer.rules import compile_profile
from tests.anonymizer.factory import Identity, ct_instance, to_bytes
from tests.paths import REPO_ROOT

PROFILES = REPO_ROOT / "profiles"


@pytest.fixture(scope="module")
def national() -> Profile:
    return load_profile("ma-national", PROFILES)


def _ultrasound(who: Identity, model: str = "Fictive Echo 1") -> Dataset:
    ds = ct_instance(who)
    ds.SOPClassUID = UltrasoundImageStorage
    ds.Modality = "US"
    ds.ManufacturerModelName = model
    return ds


def test_before_values_shown_only_when_unchanged_and_not_identifying(
    national: Profile,
) -> None:
    """Rule: a before-value is shown only when it leaves the pipeline as it came and its
    kind cannot identify anyone (Modality, Manufacturer); names, IDs and dates show their
    shape only, and an identifier a profile keeps by mistake is masked in both columns."""
    compiled = compile_profile(national)
    who = Identity()
    ds = ct_instance(who)
    for keyword in ("Modality", "Manufacturer"):
        element = ds[keyword]
        rule = compiled.exact.get(element.tag)
        before, after = explain_cells(element.tag, element.VR, rule, element.value,
                                      element.value)
        assert before == after == element.value
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber"):
        element = ds[keyword]
        rule = compiled.exact.get(element.tag)
        before, _ = explain_cells(element.tag, element.VR, rule, element.value, "X")
        assert str(element.value) not in before and before.startswith("<masked")
    kept = compiled.exact[ds["Modality"].tag]  # a KEEP rule, as if applied to PatientID
    before, after = explain_cells(ds["PatientID"].tag, "LO", kept, who.patient_id,
                                  who.patient_id)
    assert after is not None and who.patient_id not in before + after
    description = ds["StudyDescription"]  # cleaned: the name in it was removed
    before, _ = explain_cells(description.tag, "LO", compiled.exact[description.tag],
                              description.value, "CT thorax")
    assert who.family not in before


def test_pixel_plan_primary_ct_is_not_examined(national: Profile) -> None:
    """Rule: a primary CT slice with Burned In Annotation NO is not examined, and the plan
    says why with the header values the decision read."""
    ds = ct_instance(Identity())
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.BurnedInAnnotation = "NO"
    plan = pixel_plan(ds, national.pixel)
    assert plan.step == "not_examined"
    assert "modality CT" in plan.reason and "Burned In Annotation NO" in plan.reason


def test_pixel_plan_names_the_device_rule_and_its_regions(national: Profile) -> None:
    """Rule: an image a device rule describes is planned as that rule's masking (rule id,
    number of regions), followed by OCR when the profile asks for it."""
    ds = ct_instance(Identity())
    ds.ManufacturerModelName = "LightSpeed VCT"
    ds.ImageType = ["DERIVED", "SECONDARY", "SCREEN SAVE"]
    plan = pixel_plan(ds, national.pixel)
    assert plan.step == "device_rules"
    assert "lightspeed-dose-report" in plan.reason
    assert any("device rule lightspeed-dose-report" in d and "1 region(s)" in d
               for d in plan.details)
    assert any(d.startswith("OCR (ara+fra+eng") for d in plan.details)


def test_pixel_plan_ocr_and_quarantine(national: Profile) -> None:
    """Rule: an examined image no device rule describes is planned for OCR with the
    profile's languages; without OCR it is planned for quarantine, as the engine does."""
    assert national.pixel is not None
    ds = _ultrasound(Identity())
    plan = pixel_plan(ds, national.pixel)
    assert plan.step == "ocr" and "examined: modality" in plan.reason
    assert any("ara+fra+eng" in d for d in plan.details)
    no_ocr = bind_rules_dir(
        national.pixel.model_copy(update={"ocr": national.pixel.ocr.model_copy(
            update={"enabled": False})}),
        PROFILES / "pixel",
    )
    quarantined = pixel_plan(ds, no_ocr)
    assert quarantined.step == "quarantine" and "pixel_policy" in quarantined.reason
    assert pixel_plan(ds, None).step == "none"


def test_pixel_plan_reports_a_broken_rule_file_as_quarantine(tmp_path: Path) -> None:
    """Rule: a rule file the engine cannot load is planned as a quarantine (pixel_policy)."""
    policy = bind_rules_dir(PixelPolicy(rules=["missing"]), tmp_path)
    plan = pixel_plan(_ultrasound(Identity()), policy)
    assert plan.step == "quarantine" and plan.reason.startswith("pixel_policy")


def test_cli_explain_masks_phi_and_shows_the_pixel_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule: `amana profile explain` prints no made-up patient's name, ID or birth date,
    shows non-identifying kept values (Modality, Manufacturer) as they are, and says what
    the pixel step does (here: not examined, and why)."""
    who = Identity()
    ds = ct_instance(who)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.BurnedInAnnotation = "NO"
    file = tmp_path / "one.dcm"
    file.write_bytes(to_bytes(ds))
    # Wide enough that no value is folded over two lines (a folded name would hide a leak).
    monkeypatch.setattr(cli_profile.console, "_width", 400)
    result = CliRunner().invoke(
        profile_app, ["explain", str(file), "--profile", "ma-national"], terminal_width=250
    )
    assert result.exit_code == 0, result.output
    for value in (who.family, who.given, who.patient_id, who.birth_date, who.accession):
        assert value not in result.output
    assert "│ CT " in result.output and "FICTIVE MEDICAL" in result.output
    assert "pixel step" in result.output and "not_examined" in result.output
    assert "Burned In Annotation NO" in result.output
