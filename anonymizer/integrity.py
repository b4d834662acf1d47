"""Is the received pixel data whole? A truncated image must not enter the archive."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments

from anonymizer.errors import QuarantineError, QuarantineReason

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def expected_native_length(ds: Dataset) -> int:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.BitsAllocated)
    pixels = int(ds.Rows) * int(ds.Columns) * samples * frames
    if bits == 1:
        return (pixels + 7) // 8
    return pixels * (bits // 8)


def check_pixel_integrity(ds: Dataset, *, encapsulated: bool) -> None:
    """Raise QuarantineError when Pixel Data is shorter than its image module says (native)
    or its fragments do not parse (encapsulated). Reads lengths only; decodes nothing."""
    keyword = next((k for k in _PIXEL_KEYWORDS if k in ds), None)
    if keyword is None:
        return
    # get_item leaves the element raw, so the engine can still copy Pixel Data untouched.
    item = ds.get_item(keyword)
    value = item.value if item is not None else None
    if not value:
        return
    try:
        if encapsulated:
            fragments = list(generate_fragments(value))
            if not fragments:
                raise ValueError("no fragments")
            return
        if keyword != "PixelData":
            return
        if len(value) < expected_native_length(ds):
            raise QuarantineError(
                QuarantineReason.UNREADABLE,
                "Pixel Data is shorter than Rows x Columns x frames say (truncated transfer)",
            )
    except QuarantineError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise QuarantineError(
            QuarantineReason.UNREADABLE,
            f"Pixel Data or its image module is inconsistent ({type(exc).__name__})",
        ) from exc
