"""Burned-in text found by OCR is masked in every frame, every transfer syntax, both scripts."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from pydicom.uid import JPEG2000Lossless

from anonymizer.pixels import OcrSettings, PixelPolicy, clean_pixels

from . import imaging
from .imaging import IDENTIFYING, TEXTS

pytestmark = pytest.mark.ocr

POLICY = PixelPolicy(rules=[], ocr=OcrSettings(languages=["ara", "fra", "eng"]))

CASES = [
    # (colour, syntax, frames, Burned In Annotation)
    (False, "native", 1, None),
    (True, "native", 1, "YES"),
    (False, "jpeg", 1, "YES"),
    (True, "jpeg", 1, None),
    (False, "rle", 1, None),
    (True, "rle", 1, "NO"),  # a wrong flag is not trusted
    (False, "j2k", 1, "YES"),
    (True, "j2k", 1, None),
    (True, "native", 4, None),
    (False, "jpeg", 4, None),
    (True, "rle", 4, "YES"),
    (False, "j2k", 4, None),
]


def _frames(color: bool, count: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    images, truths = [], []
    for index in range(count):
        image, truth = imaging.draw(color, seed=index, texts=TEXTS)
        images.append(image)
        truths.append(truth)
    return images, truths


def _assert_covered(output_frames: np.ndarray, truths: list[np.ndarray]) -> None:
    for index, truth in enumerate(truths):
        frame = output_frames[index]
        if frame.ndim == 3:
            frame = frame.max(axis=2)
        leaked = int(np.count_nonzero(frame[truth]))
        assert leaked == 0, f"frame {index}: {leaked} text pixels left unmasked"


def _assert_image_kept(received: object, pixels: np.ndarray) -> None:
    """The masks stay on the text: at most 4% of the image changes (the text is 1%)."""
    before = received.pixel_array  # type: ignore[attr-defined]
    if before.ndim == pixels.ndim - 1:
        before = before[np.newaxis, ...]
    changed = before != pixels
    if changed.ndim == 4:
        changed = changed.any(axis=3)
    assert changed.mean() <= 0.04


@pytest.mark.parametrize(("color", "syntax", "count", "flag"), CASES)
def test_every_pixel_of_drawn_text_is_covered(
    color: bool, syntax: str, count: int, flag: str | None
) -> None:
    """Rule: in every output, every pixel of the drawn text (names, ID, date, Arabic,
    institution; several sizes and colours) is covered, whatever the transfer syntax,
    frame count or Burned In Annotation flag; the result is verified and flagged NO."""
    images, truths = _frames(color, count)
    original = imaging.encode(imaging.dataset(images, burned_in=flag), syntax, images)
    received_syntax = original.file_meta.TransferSyntaxUID
    output = copy.deepcopy(original)

    actions = clean_pixels(original, output, POLICY, IDENTIFYING)

    assert "verified" in actions
    assert any(a.startswith("ocr_mask:") for a in actions)
    assert output.BurnedInAnnotation == "NO"
    assert original.file_meta.TransferSyntaxUID == received_syntax  # original untouched
    pixels = output.pixel_array
    if count == 1:
        pixels = pixels[np.newaxis, ...]
    assert pixels.shape[0] == count
    _assert_covered(pixels, truths)
    _assert_image_kept(imaging.encode(imaging.dataset(images), syntax, images), pixels)
    if syntax == "jpeg":
        # Lossy input is re-encoded losslessly, and stays marked as once lossy.
        assert output.file_meta.TransferSyntaxUID == JPEG2000Lossless
        assert output.LossyImageCompression == "01"
        if color:
            assert output.PhotometricInterpretation == "RGB"
    else:
        assert output.file_meta.TransferSyntaxUID == received_syntax


@pytest.mark.parametrize("engine", ["cli", "tesserocr"])
def test_both_tesseract_engines_cover_the_text(engine: str) -> None:
    """Rule: the tesseract command and the in-process tesserocr engine both cover every
    pixel of the drawn text (the worker may run either)."""
    images, truths = _frames(True, 1)
    original = imaging.dataset(images)
    output = copy.deepcopy(original)
    policy = PixelPolicy(
        rules=[],
        ocr=OcrSettings(engine=engine, languages=["ara", "fra", "eng"]),  # type: ignore[arg-type]
    )
    actions = clean_pixels(original, output, policy, IDENTIFYING)
    assert "verified" in actions
    _assert_covered(output.pixel_array[np.newaxis, ...], truths)


def test_text_that_moves_between_frames_is_covered_in_each_frame() -> None:
    """Rule: static text found on a few sampled frames is masked in every frame, and a
    frame whose text moves gets its own OCR (frame 1 is never a detection sample)."""
    moving = imaging.Text(60, 120, "Testpatient", 14, (255, 255, 255))
    static = [TEXTS[0], TEXTS[1]]
    images, truths = [], []
    for index in range(4):
        texts = [
            *static,
            imaging.Text(moving.x + 60 * index, moving.y, moving.text, 14, (255,) * 3),
        ]
        image, truth = imaging.draw(False, seed=index, texts=texts)
        images.append(image)
        truths.append(truth)
    original = imaging.dataset(images)
    output = copy.deepcopy(original)

    actions = clean_pixels(original, output, POLICY, IDENTIFYING)

    assert "verified" in actions
    _assert_covered(output.pixel_array, truths)


@pytest.mark.parametrize(
    ("kind", "modality"),
    [("scanned_report", "OT"), ("xa_12bit", "XA"), ("cr_monochrome1", "SC")],
)
def test_text_in_other_image_kinds_is_covered(kind: str, modality: str) -> None:
    """Rule: every pixel of the drawn text is covered in scanned documents (dark text on
    paper), 12-bit X-ray frames and MONOCHROME1 images (text at the stored extreme)."""
    if kind == "scanned_report":
        frame, truth, photometric, bits = imaging.scanned_report()
    else:
        frame, truth, photometric, bits = imaging.xray_12bit(kind == "cr_monochrome1")
    original = imaging.dataset([np.zeros((8, 8), np.uint8)], modality=modality)
    original.set_pixel_data(frame, photometric, bits, generate_instance_uid=False)
    output = copy.deepcopy(original)

    actions = clean_pixels(original, output, POLICY, IDENTIFYING)

    assert "verified" in actions
    pixels = output.pixel_array
    assert output.PhotometricInterpretation == photometric
    assert output.BitsStored == bits
    black = pixels.max() if photometric == "MONOCHROME1" else pixels.min()
    if pixels.ndim == 3:
        assert not pixels[truth].any()
    else:
        assert np.all(pixels[truth] == black)


def test_text_appearing_in_one_unsampled_frame_is_covered() -> None:
    """Rule: text that appears only in a frame that is not a detection sample (frame 2 of
    5) is still found, because that frame shows text-like ink outside the masked areas."""
    images, truths = [], []
    for index in range(5):
        texts = [TEXTS[0]]
        if index == 1:
            texts.append(imaging.Text(200, 120, f"ID {imaging.PATIENT_ID}", 13, (255, 255, 0)))
        image, truth = imaging.draw(True, seed=index, texts=texts)
        images.append(image)
        truths.append(truth)
    original = imaging.dataset(images, sop_class="1.2.840.10008.5.1.4.1.1.3.1")
    output = copy.deepcopy(original)

    actions = clean_pixels(original, output, POLICY, IDENTIFYING)

    assert "verified" in actions
    _assert_covered(output.pixel_array, truths)


@pytest.mark.parametrize("angle", [90, 270])
def test_vertical_text_is_covered(angle: int) -> None:
    """Rule: text written vertically (side labels, a film scanned sideways) is covered."""
    from PIL import Image, ImageDraw, ImageFont

    line = Image.new("L", (200, 20), 0)
    font = ImageFont.truetype(str(imaging.FONT), 13)
    ImageDraw.Draw(line).text((2, 2), imaging.NAME, font=font, fill=255)
    turned = np.asarray(line.rotate(angle, expand=True))
    image = imaging.background(3)
    area = (slice(100, 100 + turned.shape[0]), slice(600, 600 + turned.shape[1]))
    image[area] = np.maximum(image[area], turned)
    truth = np.zeros(image.shape, dtype=bool)
    truth[area] = turned > 0
    original = imaging.dataset([image])
    output = copy.deepcopy(original)

    actions = clean_pixels(original, output, POLICY, IDENTIFYING)

    assert "verified" in actions
    assert not output.pixel_array[truth].any()


@pytest.mark.parametrize("brightness", [50, 70, 90])
def test_header_text_beside_bright_speckle_is_covered(brightness: float) -> None:
    """Rule: text on the black border is covered even when the ultrasound sector next to
    it is full of bright, text-like speckle, and the sector is not masked wholesale."""
    border_texts = [t for t in TEXTS if t.text != imaging.ARABIC_NAME]
    image, truth = imaging.draw(True, seed=0, texts=border_texts, brightness=brightness)
    original = imaging.dataset([image])
    output = copy.deepcopy(original)

    actions = clean_pixels(original, output, POLICY, IDENTIFYING)

    assert "verified" in actions
    pixels = output.pixel_array
    assert not pixels[truth].any()
    assert (pixels != image).any(axis=2).mean() <= 0.06


@pytest.mark.parametrize("panel", [60, 110, 180])
@pytest.mark.parametrize("ink", [0, 255])
def test_text_on_grey_header_panels_is_covered(panel: int, ink: int) -> None:
    """Rule: black or white text on a grey header panel (screenshots, device UIs) is
    covered whatever the panel's grey level."""
    from PIL import Image, ImageDraw, ImageFont

    base = imaging.background(1).copy()
    base[:50, :] = panel
    image = Image.fromarray(base).convert("RGB")
    truth = Image.new("L", image.size, 0)
    font = ImageFont.truetype(str(imaging.FONT), 16)
    line = f"{imaging.NAME} {imaging.PATIENT_ID}"
    ImageDraw.Draw(image).text((10, 12), line, font=font, fill=(ink, ink, ink))
    ImageDraw.Draw(truth).text((10, 12), line, font=font, fill=255)
    original = imaging.dataset([np.asarray(image).copy()])
    output = copy.deepcopy(original)

    actions = clean_pixels(original, output, POLICY, IDENTIFYING)

    assert "verified" in actions
    assert not output.pixel_array[np.asarray(truth) > 0].any()


WORDS = [
    imaging.NAME,
    f"ID {imaging.PATIENT_ID}",
    imaging.BIRTH_DATE,
    imaging.INSTITUTION,
    imaging.ARABIC_NAME,
    "Né le 12.03.1961",
    "IPP: 99887766",
]
COLOURS = [
    (255, 255, 255),
    (255, 255, 0),
    (0, 255, 0),
    (0, 255, 255),
    (255, 128, 0),
    (200, 200, 200),
    (150, 150, 150),
    (255, 0, 0),
]


@pytest.mark.parametrize("seed", range(8))
def test_random_header_and_side_text_is_covered(seed: int) -> None:
    """Rule: every pixel of text drawn on the borders (header lines, a side column) is
    covered, for random words, sizes (9-24 px), weights and colours, in grey and RGB."""
    import random

    rnd = random.Random(seed)
    texts = []
    for line in range(rnd.randint(2, 4)):
        size = rnd.choice([9, 10, 11, 12, 14, 16, 20, 24])
        if line % 2:
            x, y = rnd.randint(2, 30), rnd.randint(60, 110)  # left of the sector
            word = rnd.choice(WORDS[:3])
        else:
            # header: one line on the left, one on the right of the sector's apex
            x, y = (rnd.randint(2, 120), 4) if line == 0 else (rnd.randint(380, 420), 6)
            word = rnd.choice(WORDS)
        texts.append(imaging.Text(x, y, word, size, rnd.choice(COLOURS), rnd.random() < 0.3))
    color = seed % 2 == 0
    image, truth = imaging.draw(color, seed=seed, texts=texts)
    original = imaging.dataset([image])
    output = copy.deepcopy(original)

    clean_pixels(original, output, POLICY, IDENTIFYING)

    pixels = output.pixel_array
    _assert_covered(pixels[np.newaxis, ...], [truth])
