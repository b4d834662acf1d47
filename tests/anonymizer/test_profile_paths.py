"""Every file a profile names lies inside the profiles folder, symlinks followed.

The files outside the folder in these tests are not valid YAML (a stand-in for the pseudonym
key): an error about their content would mean the loader opened them. The refusals must be
the confinement error instead, raised before anything outside is read.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from anonymizer.engine import ProfileError, load_profile
from anonymizer.errors import QuarantineError, RejectError
from anonymizer.pixels import PixelPolicy, bind_rules_dir, rules_for
from archive.governance.profile_text import load_profile_text

# Not YAML: reading and parsing it would raise "invalid YAML", never the confinement error.
SECRET = "key: [unclosed\n\t{{{ not yaml\n"


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """(profiles folder with a valid parent profile and region table, a secret outside it)."""
    profiles = tmp_path / "profiles"
    (profiles / "regions").mkdir(parents=True)
    (profiles / "base.yaml").write_text("name: base\n", encoding="utf-8")
    (profiles / "regions" / "r.yaml").write_text(
        "regions:\n  North: [Hopital Un]\n", encoding="utf-8"
    )
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "key.yaml").write_text(SECRET, encoding="utf-8")
    (secrets / "key").write_text(SECRET, encoding="utf-8")
    return profiles, secrets


def _write(folder: Path, body: str) -> Path:
    file = folder / "site.yaml"
    file.write_text("name: site\n" + body, encoding="utf-8")
    return file


def _refused(file: Path, folder: Path) -> ProfileError:
    with pytest.raises(ProfileError) as caught:
        load_profile(str(file), folder)
    assert "invalid YAML" not in caught.value.reason, caught.value
    return caught.value


@pytest.mark.parametrize(
    "target",
    ["../secrets/key", "../../secrets/key", "/etc/passwd", "sub/base", "Base", ".hidden"],
)
def test_extends_names_a_profile_never_a_path(folders: tuple[Path, Path], target: str) -> None:
    """Rule: `extends:` is a bare profile name; a path (relative, absolute, with folders) is
    refused with the line of `extends:`."""
    profiles, _ = folders
    error = _refused(_write(profiles, f"extends: {target}\n"), profiles)
    assert error.line == 2
    assert "not a path" in error.reason


def test_extends_through_a_link_out_of_the_folder_is_refused(
    folders: tuple[Path, Path],
) -> None:
    """Rule: a profile named by `extends:` that is a symlink leading outside the profiles
    folder is refused before it is opened."""
    profiles, secrets = folders
    os.symlink(secrets / "key.yaml", profiles / "evil.yaml")
    error = _refused(_write(profiles, "extends: evil\n"), profiles)
    assert error.line == 2
    assert "outside the profiles folder" in error.reason


def test_extends_inside_the_folder_still_works(folders: tuple[Path, Path]) -> None:
    """Rule: confinement does not get in the way of a parent next to the child, even when
    that parent is a link to another file of the folder."""
    profiles, _ = folders
    os.symlink(profiles / "base.yaml", profiles / "alias.yaml")
    assert load_profile(str(_write(profiles, "extends: alias\n")), profiles).extends == "alias"


@pytest.mark.parametrize("table", ["../secrets/key.yaml", "regions/../../secrets/key.yaml"])
def test_region_table_may_not_climb_out(folders: tuple[Path, Path], table: str) -> None:
    """Rule: `generalize.region_table` is a path relative to the profiles folder without
    `..`; otherwise the profile is refused with the line of the table."""
    profiles, _ = folders
    error = _refused(_write(profiles, f"generalize:\n  region_table: {table}\n"), profiles)
    assert error.line == 3


def test_region_table_may_not_be_absolute(folders: tuple[Path, Path]) -> None:
    """Rule: an absolute region table path is refused, even one naming a real file."""
    profiles, secrets = folders
    body = f"generalize:\n  region_table: {secrets / 'key.yaml'}\n"
    assert _refused(_write(profiles, body), profiles).line == 3


def test_region_table_through_a_link_out_of_the_folder_is_refused(
    folders: tuple[Path, Path],
) -> None:
    """Rule: a region table that is a symlink (or under a symlinked folder) leading outside
    the profiles folder is refused before it is opened."""
    profiles, secrets = folders
    os.symlink(secrets / "key.yaml", profiles / "regions" / "evil.yaml")
    os.symlink(secrets, profiles / "elsewhere")
    for table in ("regions/evil.yaml", "elsewhere/key.yaml"):
        body = f"generalize:\n  region_table: {table}\n"
        error = _refused(_write(profiles, body), profiles)
        assert "outside the profiles folder" in error.reason and error.line == 3


def test_region_table_inside_the_folder_is_loaded(folders: tuple[Path, Path]) -> None:
    """Rule: a region table under the profiles folder is read relative to that folder."""
    profiles, _ = folders
    profile = load_profile(
        str(_write(profiles, "generalize:\n  region_table: regions/r.yaml\n")), profiles
    )
    assert profile.regions["hopital un"] == "North"


def test_profile_file_linked_out_of_its_folder_is_refused(folders: tuple[Path, Path]) -> None:
    """Rule: a profile loaded by name whose file is a link leading out of the profiles
    folder is refused, not read."""
    profiles, secrets = folders
    os.symlink(secrets / "key.yaml", profiles / "linked.yaml")
    with pytest.raises(ProfileError) as caught:
        load_profile("linked", profiles)
    assert "outside the profiles folder" in caught.value.reason


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("extends: ../../secrets/key\n", "line 2: extends: names a profile"),
        ("extends: evil\n", "line 2: extends: 'evil' leads outside the profiles folder"),
        ("generalize:\n  region_table: ../secrets/key.yaml\n", "line 3"),
        ("generalize:\n  region_table: regions/evil.yaml\n", "outside the profiles folder"),
    ],
)
def test_uploaded_text_is_confined_the_same_way(
    folders: tuple[Path, Path], body: str, words: str
) -> None:
    """Rule: a profile proposed over HTTP or the command line is loaded against the
    profiles folder with the same confinement: a path out of it is a RejectError naming the
    line, and the outside file is not read."""
    profiles, secrets = folders
    os.symlink(secrets / "key.yaml", profiles / "evil.yaml")
    os.symlink(secrets / "key.yaml", profiles / "regions" / "evil.yaml")
    with pytest.raises(RejectError) as caught:
        load_profile_text("name: site\n" + body, profiles)
    assert words in str(caught.value)
    assert "invalid YAML" not in str(caught.value)


def test_uploaded_text_still_extends_and_reads_tables(folders: tuple[Path, Path]) -> None:
    """Rule: an uploaded profile resolves `extends:` and its region table in the profiles
    folder as a file on disk would."""
    profiles, _ = folders
    profile = load_profile_text(
        "name: site\nextends: base\ngeneralize:\n  region_table: regions/r.yaml\n", profiles
    )
    assert profile.extends == "base" and profile.regions["hopital un"] == "North"


def test_pixel_rule_file_linked_out_of_the_rules_folder_is_refused(
    folders: tuple[Path, Path],
) -> None:
    """Rule: a pixel rule file that is a symlink leading out of the rules folder is refused
    (the instance is quarantined for its pixel policy), not parsed."""
    profiles, secrets = folders
    (profiles / "pixel").mkdir()
    os.symlink(secrets / "key.yaml", profiles / "pixel" / "evil.yaml")
    policy = bind_rules_dir(PixelPolicy(rules=["evil"]), profiles / "pixel")
    with pytest.raises(QuarantineError) as caught:
        rules_for(policy)
    assert "outside the rules folder" in caught.value.message


@pytest.mark.parametrize(
    ("ocr", "line", "words"),
    [
        ("command: /tmp/evil", 5, "pixel.ocr.command"),
        ("command: ../../bin/sh", 5, "pixel.ocr.command"),
        ("languages: [eng, ../../secrets/key]", 5, "pixel.ocr.languages"),
        ("tessdata: /work/secrets", 5, "pixel.ocr.tessdata"),
    ],
)
def test_ocr_settings_name_no_program_or_folder_of_the_profiles_choosing(
    folders: tuple[Path, Path], ocr: str, line: int, words: str
) -> None:
    """Rule: a profile's OCR settings name a program on PATH, language packs and one of the
    system's tesseract data folders; a path to run or read is refused with its line."""
    profiles, _ = folders
    body = f"pixel:\n  rules: []\n  ocr:\n    {ocr}\n"
    error = _refused(_write(profiles, body), profiles)
    assert error.line == line and words in error.reason


def test_ocr_settings_by_name_are_accepted(folders: tuple[Path, Path]) -> None:
    """Rule: the usual OCR settings (a program name, language names, a system data
    folder) load."""
    profiles, _ = folders
    body = (
        "pixel:\n  rules: []\n  ocr:\n    command: tesseract\n    languages: [ara, fra, eng]\n"
        "    tessdata: /usr/share/tesseract-ocr/5/tessdata\n"
    )
    profile = load_profile(str(_write(profiles, body)), profiles)
    assert profile.pixel is not None and profile.pixel.ocr.command == "tesseract"
