"""Which images are examined, device rules, quarantines: the pixel policy's decisions."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import JPEGBaseline8Bit, RLELossless

from amana.errors import QuarantineError, QuarantineReason
from anonymizer.pixels import (
    OcrSettings,
    PixelPolicy,
    bind_rules_dir,
    clean_pixels,
    load_pixel_rules,
)
from tests.paths import PIXEL_RULES_DIR

from . import imaging
from .imaging import IDENTIFYING, PATIENT_ID


def _policy(**fields: object) -> PixelPolicy:
    """A policy whose rule names resolve in the repository's profiles/pixel, as the
    profile loader binds them; the core itself has no rules folder to fall back on."""
    return bind_rules_dir(PixelPolicy.model_validate(fields), PIXEL_RULES_DIR)


def _ct(
    modality: str = "CT", image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL")
) -> Dataset:
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 4095, (64, 64), dtype=np.uint16)
    ds = imaging.dataset(
        [frame.astype(np.uint8)], modality=modality, sop_class="1.2.840.10008.5.1.4.1.1.2"
    )
    ds.set_pixel_data(frame, "MONOCHROME2", 12, generate_instance_uid=False)
    ds.ImageType = list(image_type)
    ds.Manufacturer = "GE MEDICAL SYSTEMS"
    ds.ManufacturerModelName = "LightSpeed VCT"
    return ds


@pytest.mark.parametrize("modality", ["CT", "MR", "PT", "NM"])
def test_primary_ct_mr_keeps_pixel_data_bit_identical(modality: str) -> None:
    """Rule: a primary CT/MR/PT/NM image without any sign of burned-in text is not
    examined and keeps its Pixel Data bytes exactly as received."""
    original = _ct(modality)
    output = copy.deepcopy(original)
    received = bytes(original.PixelData)
    actions = clean_pixels(original, output, _policy(), IDENTIFYING)
    assert actions[0] == "not_examined"
    assert bytes(output.PixelData) == received
    assert output.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID


def test_primary_ct_is_never_decoded() -> None:
    """Rule: zero pixel decoding for primary CT: Pixel Data that no decoder could read
    passes untouched, because it is never decoded."""
    original = _ct()
    original.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    original.PixelData = b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + b"not a jpeg stream"
    original["PixelData"].VR = "OB"
    output = copy.deepcopy(original)
    actions = clean_pixels(original, output, _policy(), IDENTIFYING)
    assert actions == ("not_examined",)
    assert output.PixelData == original.PixelData


def test_secondary_ct_is_examined() -> None:
    """Rule: ImageType SECONDARY/DERIVED makes even a CT image examined."""
    original = _ct(image_type=("DERIVED", "SECONDARY"))
    output = copy.deepcopy(original)
    policy = _policy(ocr=OcrSettings(enabled=False))
    with pytest.raises(QuarantineError) as caught:
        clean_pixels(original, output, policy, IDENTIFYING)
    assert caught.value.reason == QuarantineReason.PIXEL_POLICY


def test_overlays_and_icons_are_removed_without_decoding() -> None:
    """Rule: overlay planes (which may hold text) and icon thumbnails are removed."""
    original = _ct()
    original.add_new((0x6000, 0x0010), "US", 64)
    original.add_new((0x6000, 0x0011), "US", 64)
    original.add_new((0x6000, 0x3000), "OW", b"\xff" * 512)
    original.IconImageSequence = [Dataset()]
    output = copy.deepcopy(original)
    actions = clean_pixels(original, output, _policy(), IDENTIFYING)
    assert "overlay_removed" in actions and "icon_removed" in actions
    assert (0x6000, 0x3000) not in output and "IconImageSequence" not in output
    assert (0x6000, 0x3000) in original  # the original is never modified


def _logiq_us() -> tuple[Dataset, np.ndarray]:
    texts = [imaging.Text(8, 6, imaging.NAME, 14, (255, 255, 255))]
    image, truth = imaging.draw(False, seed=3, texts=texts)
    ds = imaging.dataset([image])
    ds.Manufacturer = "GE Healthcare"
    ds.ManufacturerModelName = "LOGIQ9"
    return ds, truth


def test_device_rule_masks_its_rectangle_without_ocr() -> None:
    """Rule: a device-rule image is masked in the rule's rectangles without OCR (the
    shipped, converted CTP rule for GE LOGIQ9: [0, 0, 640, 30])."""
    original, truth = _logiq_us()
    output = copy.deepcopy(original)
    policy = _policy(ocr=OcrSettings(enabled=False, command="/nonexistent/tesseract"))
    actions = clean_pixels(original, output, policy, IDENTIFYING)
    assert "rule_mask:logiq-us-logiq9" in actions
    assert not any(a.startswith("ocr_mask") for a in actions)
    assert "unverified" in actions and "BurnedInAnnotation" not in output
    pixels = output.pixel_array
    assert not pixels[:30, :].any()
    assert not pixels[truth].any()
    assert np.array_equal(pixels[30:, :], original.pixel_array[30:, :])


def _rule_file(tmp_path: Path, region: str) -> PixelPolicy:
    (tmp_path / "site.yaml").write_text(
        f"""
rules:
  - id: example-us
    label: Example US with a header band
    action: mask
    when:
      all:
        - {{attribute: Modality, contains: US}}
        - {{attribute: ManufacturerModelName, contains: [LOGIQ9, LOGIQE9]}}
        - not: {{attribute: Rows, equals: 1024}}
    regions:
      - {region}
""",
        encoding="utf-8",
    )
    policy = _policy(rules=["site"], ocr=OcrSettings(languages=["eng"]))
    return bind_rules_dir(policy, tmp_path)


@pytest.mark.ocr
def test_text_surviving_the_mask_is_quarantined(tmp_path: Path) -> None:
    """Rule: an image whose text survives masking is quarantined (residual_pixel_text),
    not archived; forced here by a device rule whose rectangle misses the name. The
    quarantine message carries no PHI."""
    original, _ = _logiq_us()
    output = copy.deepcopy(original)
    policy = _rule_file(tmp_path, "[0, 300, 100, 20]")
    with pytest.raises(QuarantineError) as caught:
        clean_pixels(original, output, policy, IDENTIFYING)
    assert caught.value.reason == QuarantineReason.RESIDUAL_PIXEL_TEXT
    for value in IDENTIFYING:
        assert value.lower() not in str(caught.value).lower()


@pytest.mark.ocr
def test_verified_rule_mask_sets_burned_in_annotation_no(tmp_path: Path) -> None:
    """Rule: Burned In Annotation becomes NO only after a verified clean."""
    original, truth = _logiq_us()
    original.BurnedInAnnotation = "YES"
    output = copy.deepcopy(original)
    actions = clean_pixels(original, output, _rule_file(tmp_path, "[0, 0, 640, 30]"), IDENTIFYING)
    assert actions[1:3] == ("rule_mask:example-us", "verified")
    assert output.BurnedInAnnotation == "NO"
    assert not output.pixel_array[truth].any()


def test_ocr_disabled_without_rule_is_quarantined() -> None:
    """Rule: an examined image with no device rule and OCR disabled is quarantined."""
    image, _ = imaging.draw(True, seed=1, texts=imaging.TEXTS)
    original = imaging.dataset([image])
    with pytest.raises(QuarantineError) as caught:
        clean_pixels(
            original, copy.deepcopy(original), _policy(ocr=OcrSettings(enabled=False)), []
        )
    assert caught.value.reason == QuarantineReason.PIXEL_POLICY


def test_ocr_failing_is_quarantined() -> None:
    """Rule: OCR that cannot run (tesseract missing, language data missing) quarantines,
    never passes."""
    image, _ = imaging.draw(True, seed=1, texts=imaging.TEXTS)
    original = imaging.dataset([image])
    policy = _policy(rules=[], ocr=OcrSettings(engine="cli", command="/nonexistent/tesseract"))
    with pytest.raises(QuarantineError) as caught:
        clean_pixels(original, copy.deepcopy(original), policy, [PATIENT_ID])
    assert caught.value.reason == QuarantineReason.OCR_UNAVAILABLE
    missing = _policy(rules=[], ocr=OcrSettings(engine="tesserocr", languages=["xyz"]))
    with pytest.raises(QuarantineError) as caught:
        clean_pixels(original, copy.deepcopy(original), missing, [PATIENT_ID])
    assert caught.value.reason == QuarantineReason.OCR_UNAVAILABLE


def test_undecodable_examined_image_is_quarantined() -> None:
    """Rule: an examined image whose pixels cannot be decoded is quarantined."""
    image, _ = imaging.draw(False, seed=1, texts=[])
    original = imaging.dataset([image])
    original.file_meta.TransferSyntaxUID = RLELossless
    original.PixelData = b"\xfe\xff\x00\xe0\x00\x00\x00\x00\xfe\xff\x00\xe0\x04\x00\x00\x00abcd"
    original["PixelData"].VR = "OB"
    with pytest.raises(QuarantineError) as caught:
        clean_pixels(original, copy.deepcopy(original), _policy(), IDENTIFYING)
    assert caught.value.reason == QuarantineReason.PIXEL_DECODE_FAILED


def test_policy_defaults_and_unknown_keys() -> None:
    """Rule: PixelPolicy() is the safe default; unknown keys in the YAML are errors."""
    policy = _policy()
    assert "US" in policy.modalities and "SC" in policy.modalities
    assert "CT" not in policy.modalities and policy.verify and policy.ocr.enabled
    with pytest.raises(ValueError):
        PixelPolicy.model_validate({"ocr": {"langs": ["eng"]}})
    assert load_pixel_rules(PIXEL_RULES_DIR, policy.rules).rules


def _overlay_with_text() -> tuple[Dataset, np.ndarray, np.ndarray]:
    """A CT with one overlay plane: an ROI outline (a label) and a name written in it."""
    from PIL import Image, ImageDraw, ImageFont
    from pydicom.pixels import pack_bits

    plane = Image.new("L", (256, 256), 0)
    pen = ImageDraw.Draw(plane)
    pen.ellipse((120, 120, 220, 220), outline=255, width=2)
    outline = np.asarray(plane) > 0
    pen.text((8, 8), "Testpatient Fatima", font=ImageFont.truetype(str(imaging.FONT), 14), fill=255)
    bits = (np.asarray(plane) > 0).astype(np.uint8)
    text = (bits > 0) & ~outline
    original = _ct()
    original.add_new((0x6000, 0x0010), "US", 256)
    original.add_new((0x6000, 0x0011), "US", 256)
    original.add_new((0x6000, 0x0040), "CS", "R")
    original.add_new((0x6000, 0x0050), "SS", [1, 1])
    original.add_new((0x6000, 0x0100), "US", 1)
    original.add_new((0x6000, 0x0102), "US", 0)
    original.add_new((0x6000, 0x3000), "OW", pack_bits(bits.ravel()))
    return original, text, outline


@pytest.mark.ocr
def test_overlay_text_is_cleaned_and_outline_kept() -> None:
    """Rule: overlay planes that hold text are cleaned ("clean" mode keeps ROI outlines,
    erases the words), without decoding Pixel Data."""
    from pydicom.overlays import get_overlay_array

    original, text, outline = _overlay_with_text()
    output = copy.deepcopy(original)
    policy = _policy(overlays="clean", ocr=OcrSettings(languages=["eng"]))
    actions = clean_pixels(original, output, policy, IDENTIFYING)
    assert actions[0] == "not_examined"
    assert any(a.startswith("overlay_cleaned:") for a in actions)
    cleaned = get_overlay_array(output, 0x6000)
    assert not cleaned[text].any()
    assert cleaned[outline].mean() > 0.9
    assert bytes(output.PixelData) == bytes(original.PixelData)


def test_overlay_is_removed_when_it_cannot_be_cleaned() -> None:
    """Rule: an overlay plane that cannot be cleaned with certainty (OCR unavailable) is
    removed, never kept with its text."""
    original, _, _ = _overlay_with_text()
    output = copy.deepcopy(original)
    policy = _policy(
        overlays="clean", ocr=OcrSettings(engine="cli", command="/nonexistent/tesseract")
    )
    actions = clean_pixels(original, output, policy, IDENTIFYING)
    assert "overlay_removed" in actions
    assert (0x6000, 0x3000) not in output


@pytest.mark.ocr
def test_palette_colour_text_is_found_in_displayed_colours() -> None:
    """Rule: PALETTE COLOR images are read in the colours a viewer shows, and masked with
    the palette's darkest entry."""
    image, truth = imaging.draw(False, seed=4, texts=imaging.TEXTS[:3])
    original = imaging.dataset([image])
    original.PhotometricInterpretation = "PALETTE COLOR"
    ramp = np.arange(256, dtype=np.uint16) * 257
    for colour in ("Red", "Green", "Blue"):
        setattr(original, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(original, f"{colour}PaletteColorLookupTableData", ramp[::-1].tobytes())
    output = copy.deepcopy(original)
    policy = _policy(rules=[], ocr=OcrSettings(languages=["eng"]))
    actions = clean_pixels(original, output, policy, IDENTIFYING)
    assert "verified" in actions
    # The inverted palette shows index 255 as black: the text must now be 255.
    assert np.all(output.pixel_array[truth] == 255)


def test_too_large_image_is_quarantined() -> None:
    """Rule: an examined image whose decoded pixels exceed the policy limit is quarantined
    (too_large) instead of exhausting the worker."""
    image, _ = imaging.draw(True, seed=1, texts=[])
    original = imaging.dataset([image] * 3)
    policy = _policy(max_decoded_mb=1)
    with pytest.raises(QuarantineError) as caught:
        clean_pixels(original, copy.deepcopy(original), policy, IDENTIFYING)
    assert caught.value.reason == QuarantineReason.TOO_LARGE


@pytest.mark.ocr
def test_forbidden_text_quarantines_even_without_identifying_values(tmp_path: Path) -> None:
    """Rule: where the policy says no text may remain, any text still read after
    masking quarantines the image (residual_pixel_text), even text that matches none of
    the instance's identifying values."""
    original, _ = _logiq_us()
    output = copy.deepcopy(original)
    policy = _rule_file(tmp_path, "[0, 300, 100, 20]").model_copy(update={"forbid_text_in": ["US"]})
    with pytest.raises(QuarantineError) as caught:
        clean_pixels(original, output, policy, ["unrelated value"])
    assert caught.value.reason == QuarantineReason.RESIDUAL_PIXEL_TEXT
    # Every examined image must lose all its text (text: all): the words the rule missed
    # quarantine it, reported by position only.
    strict = _rule_file(tmp_path, "[0, 300, 100, 20]")
    with pytest.raises(QuarantineError) as caught:
        clean_pixels(original, copy.deepcopy(original), strict, ["unrelated"])
    assert caught.value.reason == QuarantineReason.PIXEL_TEXT_REMAINING
    assert "(x, y, width, height)" in caught.value.message
    for value in IDENTIFYING:
        assert value.lower() not in str(caught.value).lower()
    # A research profile (text: sensitive) accepts text that identifies no one.
    allowed = strict.model_copy(update={"text": "sensitive"})
    assert "verified" in clean_pixels(original, copy.deepcopy(original), allowed, ["unrelated"])


def test_unread_writing_on_a_plain_border_is_masked() -> None:
    """Rule: a line of glyph-like ink on a plain border that OCR could not read at all is
    masked anyway; a lone shape (a logo, an ROI outline) is not."""
    from anonymizer.pixels import mask
    from anonymizer.pixels.ocr import FrameText

    candidates = np.zeros((100, 200), dtype=bool)
    for x in range(10, 90, 12):  # seven glyph-sized shapes on one line
        candidates[20:32, x : x + 8] = True
    candidates[60:95, 150:190] = True  # one big shape
    text = FrameText([], candidates, np.ones_like(candidates), np.ones_like(candidates))
    filled = mask.text_mask(text, candidates.shape, 2)
    assert filled[20:32, 10:90].all()
    assert not filled[60:95, 150:190].any()
    busy = FrameText([], candidates, np.zeros_like(candidates), np.ones_like(candidates))
    assert not mask.text_mask(busy, candidates.shape, 2).any()


def test_lint_names_missing_rule_files_and_languages(tmp_path: Path) -> None:
    """Rule: a steward linting a profile learns of missing rule files and OCR languages."""
    from anonymizer.pixels import lint_pixel_policy

    assert lint_pixel_policy(_policy()) == []
    broken = bind_rules_dir(
        _policy(rules=["nowhere"], ocr=OcrSettings(languages=["xyz"])), tmp_path
    )
    problems = lint_pixel_policy(broken)
    assert any("nowhere" in p for p in problems)
    assert any("xyz" in p for p in problems)


@pytest.mark.ocr
def test_single_bit_image_is_cleaned_and_stays_single_bit() -> None:
    """Rule: text in a single-bit secondary capture is covered, and the image keeps Bits
    Allocated 1 as its IOD requires."""
    from PIL import Image, ImageDraw, ImageFont
    from pydicom.pixels import pack_bits

    page = Image.new("1", (320, 120), 0)
    font = ImageFont.truetype(str(imaging.FONT), 16)
    ImageDraw.Draw(page).text((10, 10), f"{imaging.NAME} {imaging.PATIENT_ID}", font=font, fill=1)
    bits = np.asarray(page).astype(np.uint8)
    original = imaging.dataset(
        [np.zeros((4, 4), np.uint8)], modality="SC", sop_class="1.2.840.10008.5.1.4.1.1.7.1"
    )
    original.Rows, original.Columns = bits.shape
    original.BitsAllocated, original.BitsStored, original.HighBit = 1, 1, 0
    original.PixelData = pack_bits(bits.ravel())
    original["PixelData"].VR = "OB"
    output = copy.deepcopy(original)
    policy = _policy(rules=[], ocr=OcrSettings(languages=["eng"]))
    assert "verified" in clean_pixels(original, output, policy, IDENTIFYING)
    assert output.BitsAllocated == 1
    assert not output.pixel_array[bits > 0].any()


def test_ultrasound_regions_rule_keeps_only_the_regions() -> None:
    """Rule: the optional ultrasound-regions rule blanks everything outside the Sequence
    of Ultrasound Regions and keeps the regions' pixels."""
    image, truth = imaging.draw(False, seed=2, texts=imaging.TEXTS[:2])
    original = imaging.dataset([image])
    region = Dataset()
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 100, 60
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = 539, 459
    original.SequenceOfUltrasoundRegions = [region]
    output = copy.deepcopy(original)
    policy = _policy(rules=["ultrasound-regions"], ocr=OcrSettings(enabled=False))
    actions = clean_pixels(original, output, policy, IDENTIFYING)
    assert "rule_mask:us-blank-outside-regions" in actions
    pixels = output.pixel_array
    inside = np.zeros(pixels.shape, dtype=bool)
    inside[60:460, 100:540] = True
    assert not pixels[~inside].any()
    assert np.array_equal(pixels[inside], image[inside])
    assert not pixels[truth].any()


def test_segmentations_are_not_examined() -> None:
    """Rule: objects whose pixels are labels (Segmentation, Parametric Map, RT Dose) are
    DERIVED but never masked: their Pixel Data is kept as received."""
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    original = dcmread(get_testdata_file("liver_1frame.dcm"))
    output = copy.deepcopy(original)
    assert clean_pixels(original, output, _policy(), IDENTIFYING) == ("not_examined",)
    assert output.PixelData == original.PixelData
