"""Decode, mask and re-encode in every transfer syntax the receiver accepts.

Uses the sample files that ship inside the pydicom package (no download, no OCR).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from anonymizer.pixels import codec, mask

SAMPLES = [
    # (file, the syntax the masked image must be written in, once lossy)
    ("ExplVR_BigEnd.dcm", ExplicitVRLittleEndian, False),
    ("MR_small_RLE.dcm", RLELossless, False),
    ("SC_rgb_rle_2frame.dcm", RLELossless, False),
    ("SC_rgb_rle_16bit.dcm", RLELossless, False),
    ("MR_small_jp2klossless.dcm", JPEG2000Lossless, False),
    ("MR_small_jpeg_ls_lossless.dcm", JPEG2000Lossless, False),
    # 45x10 and 50x10 pixels: openjpeg refuses them, the next lossless syntax is used
    ("JPEGLSNearLossless_08.dcm", RLELossless, True),
    ("JPEGLSNearLossless_16.dcm", RLELossless, True),
    ("SC_rgb_jpeg_dcmtk.dcm", JPEG2000Lossless, True),
    ("JPEG2000.dcm", JPEG2000Lossless, True),
]


@pytest.mark.parametrize(("name", "target", "lossy"), SAMPLES)
def test_masked_pixels_are_rewritten_losslessly_and_consistently(
    name: str, target: str, lossy: bool
) -> None:
    """Rule: in every accepted transfer syntax the masked frames decode to exactly the
    masked pixels, in a lossless syntax, with Photometric Interpretation and Lossy Image
    Compression consistent with the new data."""
    path = get_testdata_file(name)
    assert path is not None
    ds = dcmread(path)
    frames = codec.decode(ds, 2**30)
    box = mask.rect_mask((frames.rows, frames.columns), [(0, 0, frames.columns // 2, 8)])
    mask.apply(frames.array, [box], mask.fill_value(frames.array, frames.photometric))
    expected = frames.array.copy()

    written = codec.encode(ds, frames, "jpeg2000_lossless")

    assert written == target
    again = dcmread(_roundtrip(ds))
    pixels = again.pixel_array
    if frames.count == 1:
        pixels = pixels[np.newaxis, ...]
    assert np.array_equal(pixels, expected)
    assert again.PhotometricInterpretation == frames.photometric
    assert int(again.get("NumberOfFrames", 1) or 1) == frames.count
    assert (again.get("LossyImageCompression") == "01") is lossy


def test_undecodable_sample_is_quarantined() -> None:
    """Rule: pixels no installed decoder can read quarantine the instance (this 12-bit
    JPEG Extended sample defeats both libjpeg and Pillow)."""
    from amana.errors import QuarantineError, QuarantineReason

    ds = dcmread(get_testdata_file("JPEG-lossy.dcm"))
    with pytest.raises(QuarantineError) as caught:
        codec.decode(ds, 2**30)
    assert caught.value.reason == QuarantineReason.PIXEL_DECODE_FAILED


def test_pixels_without_mask_are_untouched() -> None:
    """Rule: decoding alone changes nothing in the dataset's Pixel Data."""
    ds = dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    before = copy.deepcopy(ds.PixelData)
    codec.decode(ds, 2**30)
    assert ds.PixelData == before


def _roundtrip(ds: object) -> object:
    from pydicom.filebase import DicomBytesIO

    buffer = DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)  # type: ignore[attr-defined]
    buffer.seek(0)
    return buffer
