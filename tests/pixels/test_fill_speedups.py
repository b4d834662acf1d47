"""The cine step's shortcuts (one fill for all frames, the extreme-pixel count on a box)
give exactly what the plain per-pixel versions give."""

from __future__ import annotations

import numpy as np
import pytest

from anonymizer.pixels import cine, mask


def _random_mask(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    found = np.zeros(shape, dtype=bool)
    for _ in range(int(rng.integers(0, 7))):
        y, x = int(rng.integers(0, shape[0])), int(rng.integers(0, shape[1]))
        found[y : y + int(rng.integers(1, 14)), x : x + int(rng.integers(1, 25))] = True
    return found


@pytest.mark.parametrize("seed", range(4))
def test_one_mask_fills_exactly_its_pixels_on_every_frame(seed: int) -> None:
    """Rule: a single mask given for a cine fills exactly its pixels on every frame, grey
    or colour, and nothing else (masks of several separate areas included)."""
    rng = np.random.default_rng(seed)
    for _ in range(20):
        where = _random_mask(rng, (40, 60))
        for shape in ((3, 40, 60, 3), (3, 40, 60)):
            frames = rng.integers(1, 256, shape).astype(np.uint8)
            expected = frames.copy()
            expected[:, where] = 0
            mask.apply(frames, [where], 0)
            assert np.array_equal(frames, expected)


@pytest.mark.parametrize("seed", range(4))
def test_extreme_count_counts_the_pixels_of_its_area(seed: int) -> None:
    """Rule: the count of near-white or coloured pixels is taken over exactly the pixels
    of the given area (grey and colour frames, an empty area gives 0)."""
    rng = np.random.default_rng(seed)
    for _ in range(20):
        where = _random_mask(rng, (40, 60))
        colour = rng.integers(0, 256, (40, 60, 3)).astype(np.uint8)
        high, low = colour.max(axis=2).astype(int), colour.min(axis=2).astype(int)
        extreme = (high >= cine.EXTREME_GREY) | (high - low >= 80)
        assert cine._extreme_count(colour, where, 80) == int(np.count_nonzero(extreme & where))
        grey = colour[..., 0]
        expected = int(np.count_nonzero((grey >= cine.EXTREME_GREY) & where))
        assert cine._extreme_count(grey, where, 80) == expected
