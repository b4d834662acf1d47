"""The sampling rule for primary series, as pure decisions (anonymizer/pixels/sampling.py)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from anonymizer.pixels import PixelPolicy, bind_rules_dir, rules_for
from anonymizer.pixels.sampling import examined_in_full, sample_positions, sampled_slice
from tests.paths import PIXEL_RULES_DIR


def _slice(modality: str, image_type: list[str], flag: str | None = None) -> Dataset:
    ds = Dataset()
    ds.Modality = modality
    ds.ImageType = image_type
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.PixelData = b"\x00\x00"
    if flag is not None:
        ds.BurnedInAnnotation = flag
    return ds


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ([], []),
        ([(7, 1)], [0]),
        ([(2, 1), (1, 2)], [1, 0]),
        # By Instance Number, whatever the receive order: first 1, middle 3, last 5.
        ([(5, 1), (4, 2), (3, 3), (2, 4), (1, 5)], [4, 2, 0]),
        # Numbers repeated or missing: the receive order (second value) decides.
        ([(1, 3), (1, 1), (None, 2), (1, 4)], [1, 2, 3]),
        ([(None, 10), (None, 11), (None, 12), (None, 13)], [0, 1, 3]),
    ],
)
def test_first_middle_and_last_are_picked_once(
    members: list[tuple[int | None, int]], expected: list[int]
) -> None:
    """Rule: the samples are the first, middle and last slice by Instance Number when every
    slice has its own, else by receive order; each slice at most once."""
    assert sample_positions(members) == expected


@pytest.mark.parametrize(
    ("ds", "sampled"),
    [
        (_slice("CT", ["ORIGINAL", "PRIMARY", "AXIAL"]), True),
        (_slice("MR", ["ORIGINAL", "PRIMARY", "M"]), True),
        (_slice("PT", ["ORIGINAL", "PRIMARY"], flag="NO"), True),
        (_slice("CT", ["ORIGINAL", "PRIMARY", "AXIAL"], flag="YES"), False),  # examined anyway
        (_slice("CT", ["ORIGINAL", "PRIMARY", "LOCALIZER"]), False),  # examined anyway
        (_slice("CT", ["DERIVED", "SECONDARY", "AXIAL"]), False),
        (_slice("US", ["ORIGINAL", "PRIMARY"]), False),
    ],
)
def test_only_slices_their_header_leaves_undecoded_are_sampled(
    ds: Dataset, sampled: bool
) -> None:
    """Rule: sampling concerns exactly the primary slices whose header alone would leave
    them undecoded; images the header sends to examination are examined, not sampled."""
    policy = bind_rules_dir(PixelPolicy(primary_series="sampled"), PIXEL_RULES_DIR)
    assert sampled_slice(ds, policy, rules_for(policy)) is sampled
    unsampled = bind_rules_dir(PixelPolicy(), PIXEL_RULES_DIR)
    assert sampled_slice(ds, unsampled, rules_for(unsampled)) is False


def test_a_screen_that_stopped_at_the_ink_test_is_not_a_full_examination() -> None:
    """Rule: a series found with text needs every slice examined in full: undecoded slices
    and screens that ended at the ink test do not count."""
    assert examined_in_full(["examined:series_text", "ocr_mask:0_boxes", "verified"])
    assert not examined_in_full(["not_examined"])
    assert not examined_in_full(
        ["examined:series_sample", "screened:clean", "screened:no_ink", "pixels_unchanged"]
    )
