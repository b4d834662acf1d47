"""The synthetic CT of the benchmark and chaos corpus (tests/support/corpus.py) is screened
as a CT is: a chaos run measures recovery from faults, not OCR of made-up noise."""

from __future__ import annotations

from pathlib import Path

from anonymizer.engine import Deidentifier, load_profile
from anonymizer.pixels.sampling import SCREENED_CLEAN, SCREENED_TEXT
from anonymizer.pseudonyms import key_from_bytes
from tests.paths import PROFILES_DIR
from tests.support.corpus import build_corpus


def test_corpus_ct_slices_screen_clean(tmp_path: Path) -> None:
    """Rule: a screened slice of the corpus's CT series (first, middle and last) shows no
    text, as a text-free CT slice does; random values over the whole 12-bit range, which
    the corpus once used, made OCR read words and turned every series of a chaos run into
    a full examination of each slice."""
    corpus = build_corpus(tmp_path, instances=9, studies=1)
    engine = Deidentifier(load_profile("ma-national", PROFILES_DIR), key_from_bytes(b"k" * 32))
    for path in (corpus.ct[0], corpus.ct[4], corpus.ct[-1]):
        actions = engine.deidentify(path.read_bytes(), pixel_mode="screen").facts.pixel_actions
        assert SCREENED_CLEAN in actions, actions
        assert SCREENED_TEXT not in actions, actions
