from __future__ import annotations

from pathlib import Path

import pytest

from amana.settings import REPO_ROOT
from anonymizer.engine import Deidentifier, load_profile
from anonymizer.pseudonyms import key_from_bytes

PROFILES = REPO_ROOT / "profiles"


@pytest.fixture(scope="session")
def profiles_dir() -> Path:
    return PROFILES


@pytest.fixture(scope="session")
def national() -> Deidentifier:
    return Deidentifier(load_profile("ma-national", PROFILES), key_from_bytes(b"n" * 32))


@pytest.fixture(scope="session")
def basic() -> Deidentifier:
    return Deidentifier(load_profile("dicom-basic", PROFILES), key_from_bytes(b"n" * 32))
