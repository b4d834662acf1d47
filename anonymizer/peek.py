"""Reading a value without converting the element in place.

pydicom replaces a still-encoded element by its decoded form on the first read (and reads
the Specific Character Set the same way to decode text). The fast writer copies only
still-encoded elements from the input, so a read made just to look at a value would cost
a re-encoding of that element at write time.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

_CHARSET = 0x00080005


def peek(ds: Dataset, tag: int) -> Any:
    """The value of `tag` (None when absent), leaving `ds` as it was."""
    held = ds._dict.get(tag)  # type: ignore[call-overload]
    if held is None:
        return None
    if not isinstance(held, RawDataElement):
        return held.value
    charset = ds._dict.get(_CHARSET)  # type: ignore[call-overload]
    try:
        return ds[tag].value
    finally:
        ds._dict[tag] = held  # type: ignore[index]
        if charset is not None:
            ds._dict[_CHARSET] = charset  # type: ignore[index]
