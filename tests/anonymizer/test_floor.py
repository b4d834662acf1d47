"""The floor (profiles/floor.yaml): no profile may keep what it lists, and the self-check
looks for the input's own identifying values whatever the profile says."""

from __future__ import annotations

import re
from pathlib import Path

import pydicom
import pytest
import typer
from typer.testing import CliRunner

from amana.cli_profile import profile_app
from amana.errors import QuarantineError, QuarantineReason
from anonymizer.engine import Deidentifier, ProfileError, load_profile
from anonymizer.floor import FLOOR_FILE, check_profile
from anonymizer.floor_check import load_floor
from anonymizer.profile_model import AttributeRule, Option, PrivateRule, Profile
from anonymizer.pseudonyms import key_from_bytes
from tests.anonymizer.conftest import profile_copy
from tests.anonymizer.factory import Identity, ct_instance, to_bytes

# A made-up patient, with an Arabic group in the name (ISO_IR 192) and a telephone number.
LATIN_FAMILY, LATIN_GIVEN = "Fictivenom", "Samira"
ARABIC_FAMILY, ARABIC_GIVEN = "الوهمي", "سميرة"
BIRTH = "19820607"
KEEPS_NAME_AND_BIRTH = (
    "name: site\n"
    "extends: ma-national\n"
    "attributes:\n"
    "  - {tag: \"(0010,0010)\", keyword: PatientName, action: K}\n"
    "  - {tag: \"(0010,0030)\", keyword: PatientBirthDate, action: K}\n"
)
KEY = key_from_bytes(b"f" * 32)


def who() -> Identity:
    return Identity(family=LATIN_FAMILY, given=LATIN_GIVEN, birth_date=BIRTH)


def instance(**overrides: object) -> bytes:
    ds = ct_instance(who(), description="CT thorax")
    ds.PatientName = f"{LATIN_FAMILY}^{LATIN_GIVEN}={ARABIC_FAMILY}^{ARABIC_GIVEN}"
    ds.ImageComments = "controle"
    for keyword, value in overrides.items():
        setattr(ds, keyword, value)
    return to_bytes(ds)


def national(profiles_dir: Path) -> Profile:
    return load_profile("ma-national", profiles_dir).model_copy(update={"pixel": None})


def forced(profiles_dir: Path, *rules: AttributeRule, **update: object) -> Profile:
    """ma-national plus rules that break the floor, built directly: the loader's floor check
    never sees it (what a bug, a hand-built object or a tampered cache could hand over)."""
    base = national(profiles_dir)
    return base.model_copy(update={"attributes": (*base.attributes, *rules), **update})


def keep(keyword: str, tag: str) -> AttributeRule:
    return AttributeRule(tag=tag, keyword=keyword, action="K")  # type: ignore[arg-type]


def assert_quarantined(engine: Deidentifier, data: bytes) -> None:
    with pytest.raises(QuarantineError) as caught:
        engine.deidentify(data)
    assert caught.value.reason == QuarantineReason.RESIDUAL_PHI
    for secret in (LATIN_FAMILY, ARABIC_FAMILY, BIRTH):
        assert secret not in str(caught.value)


# --- the floor file and the shipped profiles ------------------------------------------------


def test_shipped_profiles_are_above_the_floor(profiles_dir: Path) -> None:
    """Rule: floor.yaml is a valid profile named `floor`, and every shipped profile (the
    floor itself included) passes the floor check."""
    floor = load_floor(profiles_dir)
    assert len(floor.entries) >= 40
    for file in sorted(profiles_dir.glob("*.yaml")):
        profile = load_profile(str(file), profiles_dir)
        assert check_profile(profile, floor) == [], file.name
    assert load_profile("floor", profiles_dir).name == "floor"


def test_floor_lists_what_the_issue_names(profiles_dir: Path) -> None:
    """Rule: names, IDs, birth date, addresses, phones, e-mail, accession numbers, staff and
    institution names are on the floor, and none of them may be kept."""
    floor = load_floor(profiles_dir)
    keywords = {entry.keyword for entry in floor.entries.values()}
    assert {
        "PatientName", "OtherPatientNames", "PatientID", "OtherPatientIDs",
        "OtherPatientIDsSequence", "IssuerOfPatientID", "PatientBirthDate", "PatientAddress",
        "PatientTelephoneNumbers", "PatientTelecomInformation", "AccessionNumber",
        "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName",
        "InstitutionName", "InstitutionAddress",
    } <= keywords
    text = (profiles_dir / FLOOR_FILE).read_text(encoding="utf-8")
    assert text.count("note:") == len(floor.entries)  # every entry says why it is there
    from anonymizer.rules import Op

    assert all(Op.KEEP not in entry.allowed for entry in floor.entries.values())


def test_draft_may_extend_the_floor(tmp_path: Path) -> None:
    """Rule: a draft profile can start from the floor (`extends: floor`)."""
    file = profile_copy(tmp_path, "draft", "name: draft\nextends: floor\n")
    assert load_profile(str(file), tmp_path).name == "draft"


# --- no profile can keep floor attributes: loader, lint ---------------------------------------


def test_profile_keeping_name_and_birth_date_is_refused_with_its_line(tmp_path: Path) -> None:
    """Rule: the loader (used by lint, propose and the engine) refuses a profile keeping
    PatientName or PatientBirthDate, naming the file and the line of the offending rule."""
    file = profile_copy(tmp_path, "site", KEEPS_NAME_AND_BIRTH)
    with pytest.raises(ProfileError) as caught:
        load_profile(str(file), tmp_path)
    assert Path(caught.value.file).name == "site.yaml"
    assert caught.value.line == 4
    assert "PatientName" in caught.value.reason and "1 more" in caught.value.reason


@pytest.mark.parametrize(
    ("text", "line", "word"),
    [
        # an option whose table cell is K: the option's line
        ("name: site\nextends: ma-national\noptions:\n  - retain_patient_characteristics\n"
         "  - retain_institution_identity\n", 5, "retain_institution_identity"),
        # a weaker action than the floor's: clean on the accession number
        ("name: site\nextends: ma-national\nattributes:\n"
         "  - {tag: \"(0008,0050)\", keyword: AccessionNumber, action: clean}\n", 4,
         "AccessionNumber"),
        # a sequence holding other IDs kept (its items would then follow other rules)
        ("name: site\nextends: ma-national\nattributes:\n"
         "  - {tag: \"(0010,1002)\", keyword: OtherPatientIDsSequence, action: K}\n", 4,
         "OtherPatientIDsSequence"),
        # a private element the vendor dictionary describes as a person name
        ("name: site\nextends: ma-national\noptions: [retain_safe_private]\nprivate:\n"
         "  keep:\n    - {creator: GEMS_RTEN_01, group: '0249', element: '14', action: K}\n",
         6, "private element"),
    ],
)
def test_every_way_of_keeping_floor_data_is_refused(
    tmp_path: Path, text: str, line: int, word: str
) -> None:
    """Rule: options, weaker actions, sequences and private keeps are checked on the
    effective (merged) profile; the error points at the line that causes it."""
    file = profile_copy(tmp_path, "site", text)
    with pytest.raises(ProfileError) as caught:
        load_profile(str(file), tmp_path)
    assert (Path(caught.value.file).name, caught.value.line) == ("site.yaml", line)
    assert word in caught.value.reason


def test_a_weakened_floor_copy_does_not_lower_the_floor(tmp_path: Path) -> None:
    """Rule: the shipped floor applies even when the profiles folder holds a floor.yaml that
    leaves PatientName out."""
    profile_copy(tmp_path, "x", "name: x\n")
    floor_file = tmp_path / FLOOR_FILE
    floor_file.write_text(
        floor_file.read_text(encoding="utf-8").replace("(0010,0010)", "(0010,0011)")
        .replace("keyword: PatientName,", "keyword: PatientCallName,"),
        encoding="utf-8",
    )
    file = profile_copy(tmp_path, "site", KEEPS_NAME_AND_BIRTH)
    with pytest.raises(ProfileError) as caught:
        load_profile(str(file), tmp_path)
    assert caught.value.line == 4


def test_lint_fails_with_the_line(tmp_path: Path) -> None:
    """Rule: `amana profile lint` on a profile that keeps the name and birth date exits 1 and
    prints `file:line:`."""
    file = profile_copy(tmp_path, "site", KEEPS_NAME_AND_BIRTH)
    app = typer.Typer()
    app.add_typer(profile_app, name="profile")
    result = CliRunner().invoke(
        app, ["profile", "lint", str(file)], env={"AMANA_PROFILES_DIR": str(tmp_path)},
        terminal_width=300,
    )
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].endswith(f"{file.name}:4: PatientName (0010,0010) is on the floor "
                             "(floor.yaml): action 'K' keeps or weakens it; the weakest "
                             "allowed is 'pseudonym'")
    assert f"{file.name}:5: PatientBirthDate" in lines[1]


# --- the self-check holds whatever the profile says (forced past lint) -----------------------


def test_forced_profile_is_refused_by_the_loader_but_accepted_built_directly(
    profiles_dir: Path,
) -> None:
    """Rule (fixture check): the forced profile really breaks the floor; only building it
    directly gets it into the engine."""
    profile = forced(profiles_dir, keep("PatientName", "(0010,0010)"))
    assert check_profile(profile, load_floor(profiles_dir))
    Deidentifier(profile, KEY)


@pytest.mark.parametrize(
    ("rules", "overrides"),
    [
        ((keep("PatientName", "(0010,0010)"), keep("PatientBirthDate", "(0010,0030)")), {}),
        ((keep("PatientName", "(0010,0010)"),), {}),
        # the Arabic group alone, in another name attribute, kept
        ((keep("OtherPatientNames", "(0010,1001)"),),
         {"OtherPatientNames": f"={ARABIC_FAMILY}^{ARABIC_GIVEN}"}),
        ((keep("PatientBirthDate", "(0010,0030)"),), {}),
        # the birth date in free text, in the forms people write it
        *[((keep("ImageComments", "(0020,4000)"),), {"ImageComments": f"ne le {form}"})
          for form in ("07/06/1982", "07.06.1982", "07-06-1982", "1982-06-07", "6/7/1982",
                       "19820607")],
        # the name in free text, another case, accents and Arabic marks as typed
        ((keep("ImageComments", "(0020,4000)"),), {"ImageComments": "revu: FICTIVENOM"}),
        ((keep("ImageComments", "(0020,4000)"),), {"ImageComments": f"المريضة {ARABIC_GIVEN}"}),
        ((keep("ImageComments", "(0020,4000)"),), {"ImageComments": "سَمِيرَة"}),
        ((keep("ImageComments", "(0020,4000)"),), {"ImageComments": "vue par Fíctivenom"}),
        # the telephone number written differently
        ((keep("ImageComments", "(0020,4000)"),), {"ImageComments": "tel +212 6-12-34-56-78"}),
        # identifiers kept
        ((keep("PatientID", "(0010,0020)"),), {}),
        ((keep("AccessionNumber", "(0008,0050)"),), {}),
        ((keep("IssuerOfPatientID", "(0010,0021)"),), {}),
    ],
)
def test_forced_leak_is_quarantined(
    profiles_dir: Path, rules: tuple[AttributeRule, ...], overrides: dict[str, object]
) -> None:
    """Rule: whatever a profile keeps, an output holding the input's own name (Latin or
    Arabic), birth date (any usual written form), IDs or phone number is never handed back:
    the instance ends quarantined `residual_phi`."""
    engine = Deidentifier(forced(profiles_dir, *rules), KEY)
    assert_quarantined(engine, instance(**overrides))


def test_forced_private_keep_is_quarantined(profiles_dir: Path) -> None:
    """Rule: a private element kept by a forced profile that holds the patient's name leaks
    nothing: the output is quarantined."""
    base = national(profiles_dir)
    private = base.private.model_copy(update={"keep": (
        PrivateRule(creator="ACME FICTIVE 1.0", group="0019", element="10"),
    )})
    profile = base.model_copy(update={
        "options": (*base.options, Option.RETAIN_SAFE_PRIVATE), "private": private,
    })
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(instance()))
    block = ds.private_block(0x0019, "ACME FICTIVE 1.0", create=True)
    block.add_new(0x10, "LO", f"{ARABIC_GIVEN} {ARABIC_FAMILY}")
    from io import BytesIO

    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    assert_quarantined(Deidentifier(profile, KEY), buffer.getvalue())


def test_ids_at_any_depth_are_looked_for(profiles_dir: Path) -> None:
    """Rule: an ID held only inside a sequence item (OtherPatientIDsSequence) is collected
    and looked for too: found in kept free text, the output is quarantined."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    other = Dataset()
    other.PatientID = "CINFICT4471"
    other.IssuerOfPatientID = "CARTE-FICTIVE"
    engine = Deidentifier(forced(profiles_dir, keep("ImageComments", "(0020,4000)")), KEY)
    data = instance(OtherPatientIDsSequence=Sequence([other]),
                    ImageComments="voir dossier CINFICT4471")
    assert_quarantined(engine, data)


def test_unspaced_scripts_are_found_inside_text(profiles_dir: Path) -> None:
    """Rule: an ideographic name written without its separator inside longer text is found
    (those scripts put no spaces between words)."""
    engine = Deidentifier(forced(profiles_dir, keep("ImageComments", "(0020,4000)")), KEY)
    data = instance(PatientName="Yamada^Tarou=山田^太郎=やまだ^たろう",
                    ImageComments="患者山田太郎の検査")
    assert_quarantined(engine, data)


def test_forced_profile_archives_a_clean_instance(profiles_dir: Path) -> None:
    """Rule: the self-check is not a blanket refusal: the same forced profile archives an
    instance whose kept attributes hold nothing identifying."""
    engine = Deidentifier(forced(profiles_dir, keep("ImageComments", "(0020,4000)")), KEY)
    outcome = engine.deidentify(instance(ImageComments="controle a 3 mois, ALI protocole"))
    assert b"Fictivenom" not in outcome.data


def test_forced_leak_through_the_cli(
    profiles_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule: `amana anonymize` with a profile that keeps the name and birth date (forced past
    the loader) archives nothing: 0 archived, 1 quarantined residual_phi, no output file."""
    from amana import cli_anonymize

    profile = forced(profiles_dir, keep("PatientName", "(0010,0010)"),
                     keep("PatientBirthDate", "(0010,0030)"))
    monkeypatch.setattr(cli_anonymize, "load_profile", lambda *args: profile)
    source = tmp_path / "in" / "one.dcm"
    source.parent.mkdir()
    source.write_bytes(instance())
    app = typer.Typer()
    app.command()(cli_anonymize.anonymize)
    home = tmp_path / "home"
    result = CliRunner().invoke(
        app, [str(source), "--out", str(tmp_path / "out"), "--create-key"],
        env={"AMANA_HOME": str(home), "AMANA_KEY_FILE": str(home / "k.key")}, terminal_width=200,
    )
    assert result.exit_code == 1, result.output
    assert "residual_phi" in result.output
    assert re.search(r"archived\W+0\b", result.output)
    assert not list((tmp_path / "out").rglob("*.dcm"))


def test_issue_profile_is_refused_by_anonymize(tmp_path: Path) -> None:
    """Rule: `amana anonymize --profile` with the issue's profile (extends ma-national, keeps
    PatientName and PatientBirthDate) stops at the profile, naming the line; nothing is
    written."""
    from amana import cli_anonymize

    (tmp_path / "profiles").mkdir()
    file = profile_copy(tmp_path / "profiles", "site", KEEPS_NAME_AND_BIRTH)
    source = tmp_path / "in.dcm"
    source.write_bytes(instance())
    app = typer.Typer()
    app.command()(cli_anonymize.anonymize)
    home = tmp_path / "home"
    result = CliRunner().invoke(
        app, [str(source), "--out", str(tmp_path / "out"), "--profile", str(file),
              "--create-key"],
        env={"AMANA_HOME": str(home), "AMANA_KEY_FILE": str(home / "k.key")}, terminal_width=300,
    )
    assert result.exit_code == 2, result.output
    assert "site.yaml:4" in result.output.replace("\n", "")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.dcm"))
