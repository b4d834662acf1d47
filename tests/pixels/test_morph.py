"""The fast window filters of the ink finder give exactly scipy.ndimage's results."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from anonymizer.pixels import morph

DTYPES = [np.bool_, np.uint8, np.int16, np.float32]


def _arrays(seed: int) -> list[tuple[np.ndarray, tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(40):
        rows, columns = (int(v) for v in rng.integers(1, 48, 2))
        size = (int(rng.integers(1, 24)), int(rng.integers(1, 24)))
        for dtype in DTYPES:
            if dtype is np.bool_:
                array = rng.random((rows, columns)) > rng.random()
            else:
                array = rng.integers(-300 if dtype != np.uint8 else 0, 256, (rows, columns))
                array = array.astype(dtype)
            found.append((array, size))
    return found


@pytest.mark.parametrize("seed", range(5))
def test_maximum_and_minimum_equal_scipys_filters(seed: int) -> None:
    """Rule: a window maximum or minimum equals scipy's (default border, origin 0) for
    every dtype the ink finder uses, any window size (even ones too), any array shape,
    windows larger than the array included: masks are exactly what they were."""
    for array, size in _arrays(seed):
        assert np.array_equal(morph.maximum(array, size), ndi.maximum_filter(array, size=size))
        assert np.array_equal(morph.minimum(array, size), ndi.minimum_filter(array, size=size))


@pytest.mark.parametrize("seed", range(5))
def test_opening_and_closing_equal_scipys(seed: int) -> None:
    """Rule: a grey opening or closing with an odd window equals scipy's; even windows
    (which scipy shifts by a pixel) are refused, not approximated."""
    for array, size in _arrays(seed):
        if array.dtype == np.bool_:
            continue
        if size[0] % 2 and size[1] % 2:
            assert np.array_equal(morph.opening(array, size), ndi.grey_opening(array, size=size))
            assert np.array_equal(morph.closing(array, size), ndi.grey_closing(array, size=size))
        else:
            with pytest.raises(ValueError):
                morph.opening(array, size)
