"""The decoded scan of the self-check finds exactly what one regex over every value finds.

The scan compiles its regex for the text values only (cached over a study) and looks for
UIDs by substring; these tests hold it to the single alternation it replaced, built here
as the oracle, on generated values and texts.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from anonymizer.identity import IdentifyingValues
from anonymizer.selfcheck import meaningful_values, scan_dataset
from anonymizer.textnorm import UNSPACED, normalize, strip_accents

_UID = st.lists(st.integers(100, 99999), min_size=4, max_size=8).map(
    lambda parts: ".".join(map(str, parts))
)
_NAME = st.sampled_from(["Bennani", "Éloïse", "Zerhouni", "مريض", "山田", "ACC4242"])
_PAD = st.sampled_from(["", " ", "é", "9", ".", "_", "x", " réf ", "山", "-"])


def _oracle(texts: tuple[str, ...], text: str) -> bool:
    """The single IGNORECASE alternation of every value, bounded by look-arounds."""
    ordered = sorted(texts, key=len, reverse=True)
    bounded = "|".join(re.escape(v) for v in ordered if not UNSPACED.search(v))
    unbounded = "|".join(re.escape(v) for v in ordered if UNSPACED.search(v))
    parts = [rf"(?<!\w)(?:{bounded})(?!\w)"] if bounded else []
    if unbounded:
        parts.append(f"(?:{unbounded})")
    pattern = re.compile("|".join(parts), re.IGNORECASE)
    return bool(pattern.search(text) or pattern.search(strip_accents(text)))


@settings(max_examples=300, deadline=None)
@given(
    uids=st.lists(_UID, min_size=1, max_size=3),
    names=st.lists(_NAME, max_size=2),
    pick=st.integers(0, 10),
    before=_PAD,
    after=_PAD,
)
def test_decoded_scan_agrees_with_one_regex(
    uids: list[str], names: list[str], pick: int, before: str, after: str
) -> None:
    """Rule: a value holding an original UID or name, standalone, is found in a decoded
    (non-ASCII) text value; one glued to a longer word or number is not, as before."""
    found = IdentifyingValues(names=set(names), uids=set(uids))
    texts, uid_values = meaningful_values(found)
    planted = [*uid_values, *texts][pick % (len(uid_values) + len(texts))]
    value = f"réf{before}{planted}{after}"
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageComments = value
    where = scan_dataset(ds, found, non_ascii_only=True)
    assert (where is not None) == _oracle(texts + uid_values, normalize(value))


def test_uid_in_a_decoded_value_is_found_at_any_depth() -> None:
    """Rule: an original UID written inside a non-ASCII text value of a sequence item is
    reported with the keyword of the element holding it."""
    uid = "1.2.826.0.1.3680043.2.1125.1"
    item = Dataset()
    item.SpecificCharacterSet = "ISO_IR 192"
    item.ContentDescription = f"série {uid} archivée"
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ReferencedImageSequence = [item]
    assert scan_dataset(ds, IdentifyingValues(uids={uid}), non_ascii_only=True) == (
        "ContentDescription"
    )
    item.ContentDescription = f"série {uid}7 archivée"  # another UID, longer
    assert scan_dataset(ds, IdentifyingValues(uids={uid}), non_ascii_only=True) is None
