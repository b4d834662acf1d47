"""The pixel policy inside the whole engine: header scrub, pixels, self-check, write."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO

from anonymizer.engine import Deidentifier, load_profile
from anonymizer.outcome import PseudonymKey
from anonymizer.pixels import OcrSettings, PixelPolicy, bind_rules_dir

from . import imaging

REPO = Path(__file__).resolve().parents[2]


def _engine() -> Deidentifier:
    profile = load_profile("ma-national", REPO / "profiles")
    if profile.pixel is None:
        pixel = bind_rules_dir(
            PixelPolicy(ocr=OcrSettings(languages=["ara", "fra", "eng"]), overlays="clean"),
            REPO / "profiles" / "pixel",
        )
        profile = profile.model_copy(update={"pixel": pixel})
    return Deidentifier(profile, PseudonymKey(b"pixel-tests-key-0123456789abcdef", "t"))


def _bytes(ds: Dataset) -> bytes:
    ds.PatientBirthDate = "19610312"
    ds.InstitutionName = imaging.INSTITUTION
    ds.StudyDate = "20240105"
    ds.StudyID = "1"
    ds.AccessionNumber = "A1"
    ds.PatientSex = "F"
    buffer = DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.ocr
def test_engine_archives_ultrasound_without_its_burned_in_text() -> None:
    """Rule: through the whole engine, an ultrasound image comes out with every pixel of
    its drawn name, ID, date and institution covered, flagged Burned In Annotation NO."""
    image, truth = imaging.draw(True, seed=0, texts=imaging.TEXTS)
    outcome = _engine().deidentify(_bytes(imaging.dataset([image])))
    assert "verified" in outcome.facts.pixel_actions
    written = dcmread(io.BytesIO(outcome.data))
    assert written.BurnedInAnnotation == "NO"
    assert not written.pixel_array[truth].any()


def test_engine_keeps_primary_ct_pixel_data_bit_identical() -> None:
    """Rule: through the whole engine, a primary CT keeps its Pixel Data bytes."""
    ct = imaging.dataset([np.zeros((8, 8), np.uint8)], modality="CT")
    ct.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ct.file_meta.MediaStorageSOPClassUID = ct.SOPClassUID
    pixels = np.random.default_rng(5).integers(0, 4095, (128, 128), dtype=np.uint16)
    ct.set_pixel_data(pixels, "MONOCHROME2", 12, generate_instance_uid=False)
    ct.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    outcome = _engine().deidentify(_bytes(ct))
    assert outcome.facts.pixel_actions[:1] == ("not_examined",)
    assert dcmread(io.BytesIO(outcome.data)).PixelData == pixels.tobytes()
