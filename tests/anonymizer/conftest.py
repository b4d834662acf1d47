from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from anonymizer.engine import Deidentifier, load_profile
from anonymizer.pseudonyms import key_from_bytes
from tests.paths import REPO_ROOT

PROFILES = REPO_ROOT / "profiles"


@pytest.fixture(scope="session")
def profiles_dir() -> Path:
    return PROFILES


@pytest.fixture(scope="session")
def national() -> Deidentifier:
    """The national profile as shipped (its pixel section included)."""
    return Deidentifier(load_profile("ma-national", PROFILES), key_from_bytes(b"n" * 32))


@pytest.fixture(scope="session")
def basic() -> Deidentifier:
    return Deidentifier(load_profile("dicom-basic", PROFILES), key_from_bytes(b"n" * 32))


def profile_copy(folder: Path, name: str, text: str) -> Path:
    """The shipped profiles (and their tables) plus one more, in `folder`."""
    shutil.copytree(PROFILES, folder, dirs_exist_ok=True)
    file = folder / f"{name}.yaml"
    file.write_text(text, encoding="utf-8")
    return file


@pytest.fixture(scope="session")
def national_tag_only(tmp_path_factory: pytest.TempPathFactory) -> Deidentifier:
    """ma-national without its pixel section: header work only, Pixel Data never decoded."""
    folder = tmp_path_factory.mktemp("profiles")
    profile_copy(folder, "tags-only", "name: tags-only\nextends: ma-national\npixel: null\n")
    return Deidentifier(load_profile("tags-only", folder), key_from_bytes(b"n" * 32))
