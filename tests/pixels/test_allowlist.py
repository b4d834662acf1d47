"""The allow-list of technical words: what may stay in an examined image, and nothing else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anonymizer.errors import QuarantineError, QuarantineReason
from anonymizer.pixels import PixelPolicy, bind_rules_dir, mask, verify
from anonymizer.pixels.allowlist import (
    EMPTY,
    AllowListError,
    allowlist_for,
    looks_identifying,
    parse_allowlist,
)
from anonymizer.pixels.ocr import FrameText, Word

PIXEL_RULES = Path(__file__).resolve().parents[2] / "profiles" / "pixel"
SHIPPED = allowlist_for(bind_rules_dir(PixelPolicy(allowlist="allowlist"), PIXEL_RULES))


def _word(text: str, x: int = 0, y: int = 0, width: int = 30, height: int = 12) -> Word:
    return Word(x, y, width, height, text, 95.0)


@pytest.mark.parametrize(
    "token",
    ["Gen", "gain", "MI:", "TIS0.4", "MI=0.8", "AO=100%", "19fps", "28Hz", "4.0MHz", "60%",
     "-59.3", "x3", "L12-5", "16cm", "cm/s", "Persist", "Map", "3", "45", "1.06", "Off"],
)  # fmt: skip
def test_technical_annotations_stay(token: str) -> None:
    """Rule: listed words, listed units, index prefixes and short numbers are accepted."""
    assert SHIPPED.allows_token(token)


@pytest.mark.parametrize(
    "token",
    [
        "Fatima",  # a name, in any case or script
        "FATIMA",
        "فاطمة",
        "Testpatient,Fatima",
        "8:48:26",  # times
        "+2:09:",
        "4/14/2020",  # dates
        "3/3/4",
        "11-15-94",
        "12.03.61",
        "1951",  # a year: more than three digits
        "1150.0",
        "99887766",  # an ID
        "3850Hz",  # a unit does not make a long number safe
        "M",  # one letter: a sex or an initial
        "F26",  # an unknown prefix before a number
        "H4.00",
        "Renal",  # a plain English word not on the list
    ],
)
def test_identity_dates_ids_and_unknown_words_are_not_allowed(token: str) -> None:
    """Rule: a word stays only when the list accepts it; names, dates, times, IDs and
    numbers of more than three digits never do."""
    assert not SHIPPED.allows_token(token)


def test_short_numbers_next_to_numbers_are_part_of_a_date() -> None:
    """Rule: OCR splits 08/29/51 into "08", "29", "51" and drops the slashes: a short
    number with another bare number right beside it on its line is masked; the same
    number beside a word stays."""
    date = [_word("08", 0), _word("29", 36), _word("51", 72)]
    assert SHIPPED.allowed(date) == [False, False, False]
    gain = [_word("Gain", 0), _word("52", 36), _word("FR", 200), _word("28", 236)]
    assert SHIPPED.allowed(gain) == [True, True, True, True]
    # Far apart on one line (scale ticks) or on other lines, numbers are measurements.
    ticks = [_word("5", 0, width=8), _word("10", 100, width=14), _word("15", 0, y=60)]
    assert SHIPPED.allowed(ticks) == [True, True, True]


def test_no_allowlist_allows_nothing() -> None:
    """Rule: without an allow-list every word read is masked, technical or not."""
    assert allowlist_for(PixelPolicy()) is EMPTY
    assert not any(EMPTY.allowed([_word("Gain"), _word("3"), _word("cm")]))


def test_the_number_rule_cannot_be_widened() -> None:
    """Rule: a steward cannot let numbers of four digits or more (years, times, IDs) stay,
    and unknown keys are refused rather than ignored."""
    with pytest.raises(AllowListError):
        parse_allowlist("max_number_digits: 4\n", "x")
    with pytest.raises(AllowListError):
        parse_allowlist("word: [Gain]\n", "x")
    assert parse_allowlist("words: [Gain]\n", "x").allows_token("GAIN")


def test_a_named_allowlist_that_cannot_be_read_quarantines(tmp_path: Path) -> None:
    """Rule: a missing or malformed allow-list quarantines (pixel_policy) instead of
    masking more or less than the steward decided."""
    (tmp_path / "broken.yaml").write_text("words: {not: a list}\n", encoding="utf-8")
    for name in ("missing", "broken"):
        policy = bind_rules_dir(PixelPolicy(allowlist=name), tmp_path)
        with pytest.raises(QuarantineError) as caught:
            allowlist_for(policy)
        assert caught.value.reason == QuarantineReason.PIXEL_POLICY
    with pytest.raises(QuarantineError):
        allowlist_for(PixelPolicy(allowlist="allowlist"))  # no folder bound


def test_looks_identifying() -> None:
    """Rule: a separator between digits (three digits or more in all) or more than three
    digits in a run is a date, a time or an ID."""
    assert all(looks_identifying(t) for t in ["8:48", "08/29/1951", "2020", "00047431395"])
    assert all(looks_identifying(t) for t in ["3/3/4", "12.03.61", "11-15-94"])
    assert not any(looks_identifying(t) for t in ["4.0", "TIS0.4", "Gain", "52", "5-5"])


def _line_text(words: list[Word]) -> FrameText:
    candidates = np.zeros((60, 400), dtype=bool)
    for w in words:
        candidates[w.y : w.y + w.height, w.x : w.x + w.width] = True
    plain = np.ones_like(candidates)
    return FrameText(words, candidates, plain, np.zeros_like(candidates))


def test_a_line_is_masked_whole_unless_each_of_its_words_is_allowed() -> None:
    """Rule (text: all): a line holding one word off the list is masked whole, listed
    words included; a line of listed words only is left as it is."""
    technical = [_word("Gain", 10, 10), _word("52", 48, 10)]
    mixed = [_word("Gain", 10, 40), _word("Fatima", 48, 40, width=60)]
    text = _line_text(technical + mixed)
    filled = mask.text_mask(text, (60, 400), 2, allow=SHIPPED)
    assert not filled[10:22, 10:78].any()
    assert filled[40:52, 10:108].all()
    # Without a list, both lines are masked.
    assert mask.text_mask(text, (60, 400), 2).sum() > filled.sum()


def test_sensitive_mode_masks_only_identifiers() -> None:
    """Rule (text: sensitive, research profiles only): words matching identifying values
    or shaped like dates, times and IDs are masked, other words stay."""
    words = [_word("Liver", 10, 10), _word("08/29/1951", 10, 40, width=80)]
    masked, _ = mask.decide(words, frozenset(), SHIPPED, "sensitive")
    assert [w.text for w in masked] == ["08/29/1951"]
    masked, _ = mask.decide([_word("Fatima")], frozenset({"fatima"}), SHIPPED, "sensitive")
    assert len(masked) == 1
    assert PixelPolicy().text == "all"


def test_listed_word_matching_the_patient_is_masked() -> None:
    """Rule: a word matching the instance's identifying values is masked even when it is
    on the list (a patient may be called Gain)."""
    masked, kept = mask.decide([_word("Gain")], frozenset({"gain"}), SHIPPED, "all")
    assert len(masked) == 1 and not kept


def test_remaining_text_is_reported_by_position_only() -> None:
    """Rule: after masking, words of three letters or more and date/ID shapes off the
    list are remaining text; the report gives boxes, never the words."""
    words = [
        Word(5, 6, 70, 12, "Fatima", 91.0),
        Word(100, 6, 40, 12, "2020", 88.0),
        Word(200, 6, 30, 12, "Gain", 95.0),
        Word(300, 6, 30, 12, "Ab", 95.0),  # two letters: too little to be a name
        Word(400, 6, 30, 12, "Xyzzy", 30.0),  # unsure reading
        Word(500, 6, 30, 5, "Xyzzy", 95.0),  # too small to be legible text
    ]
    left = verify.remaining_text(words, SHIPPED, any_word=True)
    assert [(w.x, w.y) for w in left] == [(5, 6), (100, 6)]
    only_ids = verify.remaining_text(words, SHIPPED, any_word=False)
    assert [(w.x, w.y) for w in only_ids] == [(100, 6)]
    kept = np.zeros((40, 600), dtype=bool)
    kept[0:20, 0:80] = True  # detection read and kept an allowed word here
    assert [w.x for w in verify.remaining_text(words, SHIPPED, any_word=True, kept=kept)] == [100]
    message = verify.positions(left)
    assert "(5, 6, 70, 12)" in message
    assert "Fatima" not in message and "2020" not in message


def test_the_national_profile_masks_all_text_but_its_allowlist() -> None:
    """Rule: ma-national masks every word (text: all) except its steward's allow-list,
    which loads and lints clean."""
    from anonymizer.engine import load_profile
    from anonymizer.pixels import lint_pixel_policy

    pixel = load_profile("ma-national", PIXEL_RULES.parent).pixel
    assert pixel is not None
    assert pixel.text == "all" and pixel.allowlist == "allowlist"
    assert allowlist_for(pixel) == SHIPPED
    assert not [p for p in lint_pixel_policy(pixel) if "allow-list" in p]
