"""Matching text read after masking against the instance's identifying values."""

from __future__ import annotations

import pytest

from anonymizer.pixels.ocr import Word
from anonymizer.pixels.verify import identifying_tokens, readable_text, residual_matches


def _words(*texts: str) -> list[Word]:
    return [Word(0, 0, 10, 10, text, 90.0) for text in texts]


@pytest.mark.parametrize(
    ("read", "values"),
    [
        (["TESTPATIENT"], ["Testpatient^Fatima"]),  # case
        (["Testpatiemt"], ["Testpatient^Fatima"]),  # one OCR error in a long word
        (["Fatima,"], ["Testpatient^Fatima"]),  # punctuation
        (["12/03/1961"], ["19610312"]),  # DICOM date as images write it
        (["12.03.61"], ["19610312"]),
        (["ID:", "9988", "7766"], ["99887766"]),  # an ID split by OCR
        (["IPP99887766"], ["99887766"]),  # glued to a label
        (["تجريبي"], ["مريض تجريبي"]),  # Arabic
        (["تَجْرِيبِي"], ["مريض تجريبي"]),  # Arabic with diacritics
        (["Élodie"], ["ELODIE^Testpatient"]),  # accents
    ],
)
def test_identifying_text_is_recognized(read: list[str], values: list[str]) -> None:
    """Rule: text still read after masking that matches an identifying value is caught,
    despite OCR noise, separators, case, accents and Arabic diacritics."""
    assert residual_matches(_words(*read), values) > 0


@pytest.mark.parametrize(
    ("read", "values"),
    [
        (["Gain", "50%", "12cm"], ["Testpatient^Fatima", "19610312"]),
        (["10008"], ["1.2.840.10008.5.1.4.1.1.6.1"]),  # UID digit groups never match
        (["M"], ["M"]),  # too short to mean anything
        (["Fati"], ["Testpatient^Fatima"]),
    ],
)
def test_unrelated_text_is_not_a_match(read: list[str], values: list[str]) -> None:
    """Rule: labels, measurements and fragments do not count as identifying text."""
    assert residual_matches(_words(*read), values) == 0


def test_tokens_and_readable_text() -> None:
    """Rule: only significant tokens are kept; 'no text allowed' counts confident words."""
    assert identifying_tokens(["Ba^Li", "12"]) == set()
    assert readable_text([Word(0, 0, 1, 1, "LIVER", 91.0), Word(0, 0, 1, 1, "~", 99.0)]) == 1
    assert readable_text([Word(0, 0, 1, 1, "ee", 20.0)]) == 0
