"""Previews: before/after PNGs with the masked boxes outlined, names without PHI."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from pydicom.filebase import DicomBytesIO

from anonymizer.pixels import OcrSettings, PixelPolicy, bind_rules_dir
from anonymizer.pixels.preview import preview_pngs
from tests.paths import PIXEL_RULES_DIR

from . import imaging


def _bytes(color: bool) -> bytes:
    image, _ = imaging.draw(color, seed=2, texts=imaging.TEXTS[:3])
    ds = imaging.dataset([image])
    buffer = DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.ocr
def test_preview_shows_before_and_after_side_by_side() -> None:
    """Rule: a steward's preview is one PNG per image, before and after side by side,
    named without PHI."""
    policy = PixelPolicy(rules=[], ocr=OcrSettings(languages=["eng"]))
    pictures = preview_pngs(_bytes(True), policy)
    assert len(pictures) == 1
    name, png = pictures[0]
    assert name.startswith("ocr-") and name.endswith(".png")
    for value in imaging.IDENTIFYING:
        assert value.lower() not in name.lower()
    picture = Image.open(io.BytesIO(png))
    assert picture.size == (2 * imaging.COLUMNS + 8, imaging.ROWS)


def test_preview_of_a_quarantined_image_names_the_reason() -> None:
    """Rule: when the policy would quarantine, the preview says why."""
    policy = PixelPolicy(rules=[], ocr=OcrSettings(enabled=False))
    pictures = preview_pngs(_bytes(False), policy)
    assert [name for name, _ in pictures] == ["quarantine-pixel_policy.png"]


def test_preview_of_unreadable_input_does_not_fail() -> None:
    """Rule: a file that is not DICOM gets a named placeholder, not an exception."""
    pictures = preview_pngs(b"not a dicom file", bind_rules_dir(PixelPolicy(), PIXEL_RULES_DIR))
    assert [name for name, _ in pictures] == ["quarantine-unreadable.png"]


def test_preview_of_a_primary_ct_is_empty() -> None:
    """Rule: images the policy does not examine produce no preview (nothing changes)."""
    import numpy as np

    ds = imaging.dataset([np.zeros((16, 16), np.uint8)], modality="CT")
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    buffer = DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    policy = bind_rules_dir(PixelPolicy(), PIXEL_RULES_DIR)  # as the profile loader binds it
    assert preview_pngs(buffer.getvalue(), policy) == []
