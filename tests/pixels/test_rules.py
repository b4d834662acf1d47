"""Device rule files: predicate trees, validation, caching, and the converter."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from anonymizer.errors import QuarantineError, QuarantineReason
from anonymizer.pixels import PixelPolicy, load_pixel_rules, rules_for
from anonymizer.pixels.rules import RuleFileError, evaluate, parse_rule_file
from tests.paths import PIXEL_RULES_DIR

REPO = Path(__file__).resolve().parents[2]


def _ds(**values: object) -> Dataset:
    ds = Dataset()
    for key, value in values.items():
        setattr(ds, key, value)
    return ds


def _rule(when: str) -> str:
    return f"rules:\n  - id: r1\n    action: examine\n    when: {when}\n"


@pytest.mark.parametrize(
    ("when", "ds", "expected"),
    [
        ("{attribute: Modality, contains: us}", _ds(Modality="US"), True),
        (
            "{attribute: ImageType, contains: SCREEN SAVE}",
            _ds(ImageType=["DERIVED", "SCREEN SAVE"]),
            True,
        ),
        (
            "{attribute: ImageType, contains: [LOCAL, SAVE]}",
            _ds(ImageType=["ORIGINAL", "PRIMARY"]),
            False,
        ),
        ("{attribute: Rows, equals: 512}", _ds(Rows=512), True),
        ("{attribute: Manufacturer, missing: true}", _ds(Modality="CT"), True),
        ("{attribute: Manufacturer, empty: true}", _ds(Manufacturer=""), True),
        ("{attribute: Manufacturer, empty: true}", _ds(Modality="CT"), False),
        ("{not: {attribute: Modality, equals: CT}}", _ds(Modality="US"), True),
        (
            "{any: [{attribute: Modality, equals: MR}, {all: [{attribute: Rows, equals: 8},"
            " {attribute: Modality, contains: C}]}]}",
            _ds(Modality="CT", Rows=8),
            True,
        ),
    ],
)
def test_predicates(when: str, ds: Dataset, expected: bool) -> None:
    """Rule: predicates are explicit all/any/not trees over one-attribute leaves."""
    (rule,) = parse_rule_file(_rule(when), "t.yaml")
    assert evaluate(rule.when, ds) is expected


@pytest.mark.parametrize(
    "text",
    [
        _rule("{attribute: NotAKeyword, contains: x}"),
        _rule("{attribute: Modality, contains: x, equals: y}"),
        _rule("{some: []}"),
        "rules:\n  - id: r1\n    action: mask\n    when: {attribute: Modality, equals: US}\n",
        "rules:\n  - id: r1\n    when: {attribute: Modality, equals: US}\n"
        "    regions: [[0, 0, -1, 5]]\n",
        "rules:\n  - id: r1\n    colour: red\n    when: {attribute: Modality, equals: US}\n",
        "rules: [{id: a, action: examine, when: {attribute: Rows, equals: 1}}, "
        "{id: a, action: examine, when: {attribute: Rows, equals: 1}}]\n",
    ],
)
def test_malformed_rule_files_are_errors(text: str) -> None:
    """Rule: stewards get an error naming the file and rule for a malformed rule."""
    with pytest.raises(RuleFileError, match="t.yaml"):
        parse_rule_file(text, "t.yaml")


def test_rule_files_are_parsed_once(tmp_path: Path) -> None:
    """Rule: rule files are loaded once and cached; an edited file is read again."""
    path = tmp_path / "site.yaml"
    path.write_text(_rule("{attribute: Modality, equals: US}"), encoding="utf-8")
    first = load_pixel_rules(tmp_path, ["site"])
    assert load_pixel_rules(tmp_path, ["site"]).rules[0] is first.rules[0]
    path.write_text(_rule("{attribute: Modality, equals: XA}") + "\n", encoding="utf-8")
    assert load_pixel_rules(tmp_path, ["site"]).rules[0] is not first.rules[0]
    with pytest.raises(RuleFileError):
        load_pixel_rules(tmp_path, ["../escape"])


def test_unbound_rules_quarantine_instead_of_guessing_a_folder() -> None:
    """Rule: the core never looks for rule files on its own: a policy that names rules but
    was given no folder quarantines (pixel_policy); one naming no rules needs none."""
    with pytest.raises(QuarantineError) as caught:
        rules_for(PixelPolicy(rules=["ctp-device-regions"]))
    assert caught.value.reason == QuarantineReason.PIXEL_POLICY
    assert rules_for(PixelPolicy(rules=[])).rules == ()


def test_shipped_rule_files_load() -> None:
    """Rule: the converted CTP rule library in profiles/pixel is valid."""
    rules = load_pixel_rules(
        PIXEL_RULES_DIR, ["ctp-device-regions", "ctp-examine-signs", "ultrasound-regions"]
    )
    assert len(rules.rules) > 100
    assert (PIXEL_RULES_DIR / "ATTRIBUTION.md").read_text(encoding="utf-8").count("MIT")


SAMPLE = """FORMAT dicom

%filter whitelist

LABEL Marked clean
  contains BurnedInAnnotation No

%filter graylist

LABEL Example US # (CTP)
  contains Modality US
  + contains Manufacturer ACME|Example
  + contains ImageType SCREEN SAVE || contains SeriesDescription Dose
  + equals Rows 480
  ctpcoordinates 0,0,640,30
  coordinates 10,440,210,470

%filter blacklist

LABEL Missing type
  missing ImageType || empty ImageType

%header

REMOVE PatientName
"""


def test_converter_turns_ctp_rules_into_yaml_trees(tmp_path: Path) -> None:
    """Rule: the converter writes header predicates as all/any trees and both coordinate
    notations as [x, y, width, height]; whitelist rules are not trusted."""
    spec = importlib.util.spec_from_file_location(
        "convert_region_rules", REPO / "scripts" / "convert_region_rules.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    source = tmp_path / "src"
    source.mkdir()
    (source / "deid.dicom").write_text(SAMPLE, encoding="utf-8")
    target = tmp_path / "pixel"
    assert module.main([str(source), str(target)]) == 0
    rules = load_pixel_rules(target, ["ctp-device-regions", "ctp-examine-signs"]).rules
    assert [r.id for r in rules] == ["example-us", "sign-missing-type"]
    assert rules[0].regions == ((0, 0, 640, 30), (10, 440, 200, 30))
    matching = _ds(Modality="US", Manufacturer="Example", SeriesDescription="Dose", Rows=480)
    assert evaluate(rules[0].when, matching)
    assert not evaluate(rules[0].when, _ds(Modality="US", Manufacturer="Other", Rows=480))


_DEVICE_VALUES = {
    "Modality": ["US", "CT", "MR", "OT", "XA"],
    "Manufacturer": ["GE MEDICAL SYSTEMS", "Philips", "SIEMENS", "TOSHIBA", "ACME", ""],
    "ManufacturerModelName": ["LOGIQ E9", "iU22", "ACUSON Sequoia", "Aplio 500", "X1"],
    "ImageType": [["ORIGINAL", "PRIMARY"], ["DERIVED", "SECONDARY", "SCREEN SAVE"]],
    "SoftwareVersions": ["1.0", "R4.5.1", ""],
    "Rows": [480, 600, 768, 1024],
    "Columns": [640, 800, 1024],
}


def test_memoized_matching_equals_evaluating_every_rule() -> None:
    """Rule: the per-device memo of rule outcomes never changes which rules match: for many
    device signatures, asked repeatedly and in any order, `matching` gives exactly the rules
    whose predicates hold when each is evaluated afresh."""
    import random

    # allowlist.yaml sits beside the rule files but holds words, not rules.
    names = sorted(p.stem for p in PIXEL_RULES_DIR.glob("*.yaml") if p.stem != "allowlist")
    rules = load_pixel_rules(PIXEL_RULES_DIR, names)
    assert load_pixel_rules(PIXEL_RULES_DIR, names) is rules  # the memo lives on
    rng = random.Random(1234)
    matched_any = 0
    for _ in range(600):
        ds = _ds(**{k: rng.choice(v) for k, v in _DEVICE_VALUES.items() if rng.random() < 0.9})
        for action in ("mask", "examine"):
            expected = [r for r in rules.rules if r.action == action and evaluate(r.when, ds)]
            assert rules.matching(ds, action) == expected
            matched_any += bool(expected)
    assert matched_any > 0  # the signatures do reach real rules
