"""The pixel step inside the engine: called after the header scrub, before the self-check."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pydicom
import pytest

from anonymizer.engine import Deidentifier, load_profile
from anonymizer.pseudonyms import key_from_bytes
from tests.anonymizer.factory import Identity, ct_instance, to_bytes


@pytest.fixture(scope="module")
def with_pixels(tmp_path_factory: pytest.TempPathFactory, profiles_dir: Path) -> Deidentifier:
    folder = tmp_path_factory.mktemp("profiles")
    for name in ("dicom-basic.yaml", "ma-national.yaml"):
        shutil.copy(profiles_dir / name, folder / name)
    for sub in ("regions", "pixel"):
        shutil.copytree(profiles_dir / sub, folder / sub)
    (folder / "pixels-on.yaml").write_text("name: pixels-on\nextends: ma-national\npixel: {}\n")
    return Deidentifier(load_profile("pixels-on", folder), key_from_bytes(b"p" * 32))


def test_pixel_policy_runs_and_is_recorded(with_pixels: Deidentifier,
                                           national: Deidentifier) -> None:
    """Rule: with a `pixel:` section the engine calls the pixel step and records its actions
    in the facts; an image the policy does not examine keeps its Pixel Data bytes and gets
    the same header as under the tag-only profile."""
    ds = ct_instance(Identity())
    data = to_bytes(ds)
    outcome = with_pixels.deidentify(data)
    assert outcome.facts.pixel_actions
    out = pydicom.dcmread(io.BytesIO(outcome.data))
    assert out.PixelData == ds.PixelData
    tag_only = pydicom.dcmread(io.BytesIO(national.deidentify(data).data))
    assert out.Modality == tag_only.Modality and out.StudyDescription == (
        tag_only.StudyDescription
    )


def test_profile_without_pixel_section_is_tag_only(national: Deidentifier) -> None:
    """Rule: without a pixel section nothing pixel-related happens (no actions recorded)."""
    outcome = national.deidentify(to_bytes(ct_instance(Identity())))
    assert outcome.facts.pixel_actions == ()
