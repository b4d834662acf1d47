"""Detection may read with fewer languages than verification (`ocr.detect_languages`,
ma-national: ara+fra); every drawn word, Arabic ones included, is still masked, and
verification's independent reading still reads with every language of the profile."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from anonymizer.engine import load_profile
from anonymizer.pixels import OcrSettings, PixelPolicy, clean_pixels, ocr
from anonymizer.pixels.policy import bind_rules_dir

from . import imaging
from .imaging import ARABIC_NAME, IDENTIFYING, TEXTS

pytestmark = pytest.mark.ocr

PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def _national_ocr() -> OcrSettings:
    pixel = load_profile("ma-national", PROFILES).pixel
    assert pixel is not None
    return pixel.ocr


def _policy() -> PixelPolicy:
    # The national OCR settings, without device rules (OCR alone must find the text).
    return bind_rules_dir(PixelPolicy(rules=[], ocr=_national_ocr()), PROFILES / "pixel")


def _covered(pixels: np.ndarray, truth: np.ndarray) -> int:
    frame = pixels.max(axis=2) if pixels.ndim == 3 else pixels
    return int(np.count_nonzero(frame[truth]))


def test_the_national_profile_detects_in_arabic_and_latin_and_verifies_in_all() -> None:
    """Rule: ma-national's detection reads Arabic and a Latin-script language (one per
    script its images carry), and its verification reads every profile language; a
    detection without Arabic is not what it ships."""
    settings = _national_ocr()
    detection = settings.for_detection().languages
    assert "ara" in detection and ({"fra", "eng"} & set(detection))
    assert set(detection) <= set(settings.languages)
    assert settings.languages == ["ara", "fra", "eng"]
    assert OcrSettings(languages=["ara", "eng"]).for_detection().languages == ["ara", "eng"]


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_every_drawn_word_is_masked_with_the_national_detection(color: bool, seed: int) -> None:
    """Rule: with the national detection languages, every pixel of every drawn word
    (names, ID, date, institution, faint grey, and the Arabic name over the image) is
    covered, on grey and colour frames, and the result is verified."""
    image, truth = imaging.draw(color, seed=seed, texts=TEXTS)
    original = imaging.dataset([image])
    output = copy.deepcopy(original)

    actions = clean_pixels(original, output, _policy(), IDENTIFYING)

    assert "verified" in actions
    assert _covered(output.pixel_array, truth) == 0


@pytest.mark.parametrize("place", [(8, 440), (60, 150), (300, 260), (420, 60)])
def test_an_arabic_name_anywhere_is_masked_with_the_national_detection(
    place: tuple[int, int],
) -> None:
    """Rule: an Arabic name on the border or over the image, in white or yellow, is
    masked whole by the national detection (Arabic is one of its languages)."""
    for colour in ((255, 255, 255), (255, 255, 0)):
        text = imaging.Text(place[0], place[1], ARABIC_NAME, 20, colour)
        image, truth = imaging.draw(True, seed=place[0], texts=[text])
        original = imaging.dataset([image])
        output = copy.deepcopy(original)

        actions = clean_pixels(original, output, _policy(), IDENTIFYING)

        assert "verified" in actions
        assert _covered(output.pixel_array, truth) == 0


def test_verification_reads_with_every_profile_language(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rule: detection's pages, and verification's first reading (detection's kind of
    ink again), are read in the detection languages; verification's independent reading
    in all the profile's languages, Arabic included."""
    runs: list[str] = []
    verifications: list[str] = []
    run_tesseract, read_pages = ocr.run_tesseract, ocr.read_pages

    def run_spy(image: object, settings: OcrSettings) -> str:
        runs.append("+".join(settings.languages))
        return run_tesseract(image, settings)  # type: ignore[arg-type]

    def pages_spy(pages: list[ocr.Page | None], settings: OcrSettings) -> list[list[ocr.Word]]:
        verifications.append("+".join(settings.languages))
        return read_pages(pages, settings)

    monkeypatch.setattr(ocr, "run_tesseract", run_spy)
    monkeypatch.setattr(ocr, "read_pages", pages_spy)
    image, _ = imaging.draw(True, seed=1, texts=TEXTS)
    original = imaging.dataset([image])
    actions = clean_pixels(original, copy.deepcopy(original), _policy(), IDENTIFYING)

    assert "verified" in actions
    assert runs[0] == "ara+fra"  # detection
    assert verifications == ["ara+fra", "ara+fra+eng"]
