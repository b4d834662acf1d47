"""The pixel step inside the engine: called after the header scrub, before the self-check."""

from __future__ import annotations

import io

import pydicom
import pytest

from anonymizer.engine import Deidentifier, load_profile
from anonymizer.pseudonyms import key_from_bytes
from tests.anonymizer.conftest import profile_copy
from tests.anonymizer.factory import Identity, ct_instance, to_bytes


@pytest.fixture(scope="module")
def with_pixels(tmp_path_factory: pytest.TempPathFactory) -> Deidentifier:
    folder = tmp_path_factory.mktemp("profiles")
    profile_copy(folder, "pixels-on", "name: pixels-on\nextends: ma-national\npixel: {}\n")
    return Deidentifier(load_profile("pixels-on", folder), key_from_bytes(b"n" * 32))


@pytest.mark.ocr
def test_pixel_policy_runs_and_is_recorded(with_pixels: Deidentifier,
                                           national_tag_only: Deidentifier) -> None:
    """Rule: with a `pixel:` section the engine calls the pixel step and records its actions
    in the facts; the header is the same as under the tag-only variant of the profile."""
    ds = ct_instance(Identity())
    data = to_bytes(ds)
    outcome = with_pixels.deidentify(data)
    assert outcome.facts.pixel_actions
    out = pydicom.dcmread(io.BytesIO(outcome.data))
    tag_only = pydicom.dcmread(io.BytesIO(national_tag_only.deidentify(data).data))
    assert out.Modality == tag_only.Modality
    assert out.StudyDescription == tag_only.StudyDescription
    assert out.PatientID == tag_only.PatientID


def test_profile_without_pixel_section_is_tag_only(national_tag_only: Deidentifier) -> None:
    """Rule: without a pixel section nothing pixel-related happens (no actions recorded) and
    Pixel Data is copied byte for byte."""
    ds = ct_instance(Identity())
    outcome = national_tag_only.deidentify(to_bytes(ds))
    assert outcome.facts.pixel_actions == ()
    assert pydicom.dcmread(io.BytesIO(outcome.data)).PixelData == ds.PixelData
