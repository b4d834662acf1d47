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


def test_big_endian_word_values_are_swapped_when_written_little_endian() -> None:
    """Rule: a big-endian data set rewritten little-endian carries its OW/OF/OL/OD/OV values
    (palette LUT data, segmented LUTs) in little-endian byte order, Pixel Data excepted
    (re-encoded on its own); a value of odd length is refused, not half-swapped."""
    import pytest
    from pydicom.dataelem import DataElement

    from anonymizer.errors import QuarantineError
    from anonymizer.pixels.codec import _to_little_endian_words

    lut = DataElement(0x00281221, "OW", bytes([0x00, 0x01, 0x20, 0x00]))
    _to_little_endian_words(lut)
    assert lut.value == bytes([0x01, 0x00, 0x00, 0x20])
    floats = DataElement(0x00660016, "OF", bytes([0x3F, 0x80, 0x00, 0x00]))
    _to_little_endian_words(floats)
    assert floats.value == bytes([0x00, 0x00, 0x80, 0x3F])
    pixels = DataElement(0x7FE00010, "OW", bytes([0x00, 0x01]))
    _to_little_endian_words(pixels)
    assert pixels.value == bytes([0x00, 0x01])
    with pytest.raises(QuarantineError):
        _to_little_endian_words(DataElement(0x00281222, "OW", b"\x00\x01\x02"))


def _us_frame_16bit(little_endian: bool) -> bytes:
    """A made-up 16-bit ultrasound frame (examined by modality), in either byte order."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, generate_uid

    rows, cols = 120, 320
    banner = Image.new("L", (cols, rows), 0)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 18)
    ImageDraw.Draw(banner).text((8, 6), "MADEUP PERSON 1971", fill=255, font=font)
    text = np.asarray(banner, dtype=np.uint16) * 15
    ramp = (np.arange(rows * cols, dtype=np.uint32).reshape(rows, cols) % 700).astype(np.uint16)
    values = np.maximum(text, ramp)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    ds.file_meta.MediaStorageSOPInstanceUID = "2.25.1234567"
    ds.file_meta.TransferSyntaxUID = (
        ExplicitVRLittleEndian if little_endian else ExplicitVRBigEndian
    )
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "2.25.11", "2.25.12"
    ds.PatientName, ds.PatientID, ds.Modality = "Madeup^Person", "MADEUP-1", "US"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = values.astype("<u2" if little_endian else ">u2").tobytes()
    assert generate_uid  # the fixed UIDs above keep both byte orders one instance
    buffer = DicomBytesIO()
    ds.save_as(buffer, implicit_vr=False, little_endian=little_endian, enforce_file_format=True)
    return buffer.getvalue()


def test_a_big_endian_image_cleans_to_the_same_pixels_as_its_little_endian_twin() -> None:
    """Rule: the byte order an image was received in changes nothing in what is archived:
    the same frame sent big-endian and little-endian gives identical output pixels (a
    big-endian frame re-encoded with its bytes in the wrong order would be noise)."""
    import io

    import numpy as np
    import pydicom

    from anonymizer.engine import Deidentifier, load_profile
    from anonymizer.pseudonyms import key_from_bytes
    from tests.paths import PROFILES_DIR

    engine = Deidentifier(load_profile("ma-national", PROFILES_DIR), key_from_bytes(b"k" * 32))
    big, little = (
        pydicom.dcmread(io.BytesIO(engine.deidentify(_us_frame_16bit(order)).data))
        for order in (False, True)
    )
    # The burned-in line was masked, so the frame was decoded and written again.
    assert str(big.file_meta.TransferSyntaxUID) != "1.2.840.10008.1.2.2"
    assert np.array_equal(big.pixel_array, little.pixel_array)
    assert int(big.pixel_array[60:, :].max()) == 699  # the image below the text, intact
