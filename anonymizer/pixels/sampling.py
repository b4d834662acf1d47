"""Sampling primary cross-sectional series: which slices are screened, and what a screen
means for the rest of the series. Pure decisions, no state: the archive pipeline holds the
slices of a series and keeps what was decided (archive/work/sampling.py).

A primary CT/MR/PT/NM slice is not examined from its header (selection.py): the scanner
writes its annotations in the viewer, not in the reconstructed values. Sampling checks that
belief per series at the price of three decodes: the first, middle and last slice are
decoded and screened (a text-presence test on their ink, then OCR only where ink fired).
When one of them shows text the belief is wrong for this series, and every slice of it is
examined in full. docs/pixels.md, "Sampling primary series".
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pydicom.dataset import Dataset

from .policy import PixelPolicy
from .rules import RuleSet
from .selection import examination_decision, primary_slice


class PixelMode(StrEnum):
    """What the pixel step does with an image beyond what its header decides. A mode only
    ever adds examination: an image its header sends to examination is examined in every
    mode."""

    AUTO = "auto"  # the header decides (selection.py)
    SCREEN = "screen"  # a sample of its series: decode, look for ink, OCR where it fired
    EXAMINE = "examine"  # its series showed text: the full examination


# Actions a screened slice reports (after its "examined:series_sample").
SCREENED_TEXT = "screened:text"
SCREENED_CLEAN = "screened:clean"
# A screen that ended at the ink test (no text-like ink): decoded, but not read by OCR.
SCREENED_NO_INK = "screened:no_ink"
# The reason recorded for slices examined because of their series.
SERIES_SAMPLE = "series_sample"
SERIES_TEXT = "series_text"


def sampled_slice(ds: Dataset, policy: PixelPolicy, rules: RuleSet) -> bool:
    """Whether `ds` (the received header) is a slice whose series is sampled: the profile
    asks for it and its header alone would leave it undecoded as a primary slice."""
    if policy.primary_series != "sampled":
        return False
    reason, why_not = examination_decision(ds, policy, rules)
    return reason is None and why_not in ("primary_slice", "flag_no") and primary_slice(ds)


def sample_positions(members: Sequence[tuple[int | None, int]]) -> list[int]:
    """Positions in `members` of the first, middle and last slice of a series, each once.

    A member is (InstanceNumber or None, receive order). Slices are ordered by Instance
    Number when every one has its own; otherwise (numbers missing or repeated, as some
    devices send) by the order they were received, which is the sender's order.
    """
    if not members:
        return []
    numbers = [number for number, _ in members]
    if all(n is not None for n in numbers) and len(set(numbers)) == len(numbers):
        order = sorted(range(len(members)), key=lambda i: (members[i][0], members[i][1]))
    else:
        order = sorted(range(len(members)), key=lambda i: members[i][1])
    picks = (order[0], order[(len(order) - 1) // 2], order[-1])
    return list(dict.fromkeys(picks))


def screen_found_text(actions: Sequence[str]) -> bool:
    """Whether a screened slice showed text (its masks covered something)."""
    return SCREENED_TEXT in actions


def examined_in_full(actions: Sequence[str]) -> bool:
    """Whether the pixel step examined the image in full (decoded, read, masked where text
    was read, verified), not only screened it for ink or left it undecoded."""
    return bool(actions) and actions[0].startswith("examined:") and SCREENED_NO_INK not in actions
