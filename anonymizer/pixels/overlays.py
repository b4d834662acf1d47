"""Overlay planes (60xx) and curves (50xx): bitmaps and graphics beside Pixel Data.

Overlays often hold ROI outlines (training labels worth keeping) and sometimes text. In
"clean" mode each plane is read by OCR like a frame, words are erased from the bitmap and
the plane is read again; a plane that cannot be cleaned with certainty is removed, which
loses a label but never leaks. None of this decodes Pixel Data.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
from pydicom.dataset import Dataset
from pydicom.overlays import get_overlay_array
from pydicom.pixels import pack_bits

from anonymizer.errors import QuarantineError

from . import mask, ocr, verify
from .policy import PixelPolicy


def _groups(ds: Dataset, first: int) -> list[int]:
    # Tags only: iterating a Dataset yields its elements and decodes every value.
    found = {tag.group for tag in ds.keys() if first <= tag.group <= first + 0x1E}  # noqa: SIM118
    return sorted(g for g in found if g % 2 == 0)


def _remove_group(ds: Dataset, group: int) -> None:
    for tag in [tag for tag in ds.keys() if tag.group == group]:  # noqa: SIM118
        del ds[tag]


def _clean_plane(ds: Dataset, group: int, policy: PixelPolicy, values: Collection[str]) -> str:
    """Erase the words of one overlay plane; the action code, or raise to have it removed."""
    frames = int(ds.get((group, 0x0015)).value or 1) if (group, 0x0015) in ds else 1
    if frames != 1 or (group, 0x3000) not in ds:
        raise ValueError("multi-frame or embedded overlay")
    bits = np.asarray(get_overlay_array(ds, group), dtype=np.uint8)
    image = (bits * 255).astype(np.uint8)
    settings = policy.ocr
    found = ocr.read_frame(
        image, settings, min_contrast=settings.min_contrast, min_chroma=settings.min_chroma
    )
    erase = mask.word_mask(found, bits.shape, settings.margin, verify.identifying_tokens(values))
    if not erase.any():
        return "overlay_kept"
    bits[erase] = 0
    again = ocr.read_frame(
        (bits * 255).astype(np.uint8),
        settings,
        min_contrast=settings.verify_min_contrast,
        min_chroma=settings.verify_min_chroma,
    )
    if verify.residual_matches(again.words, values):
        raise ValueError("identifying text left in overlay")
    packed = pack_bits(bits.ravel())
    if len(packed) % 2:
        packed += b"\x00"
    ds[(group, 0x3000)].value = packed
    return f"overlay_cleaned:{len(mask.boxes_of(erase))}_boxes"


def handle(output: Dataset, policy: PixelPolicy, values: Collection[str]) -> list[str]:
    """Apply the policy's overlay mode to `output`; the action codes taken."""
    actions: list[str] = []
    curves = _groups(output, 0x5000)
    planes = _groups(output, 0x6000)
    # Curves (retired) may carry annotation text; nothing here can clean them.
    for group in curves:
        _remove_group(output, group)
    if curves:
        actions.append("curves_removed")
    for group in planes:
        if policy.overlays == "clean" and policy.ocr.enabled:
            try:
                actions.append(_clean_plane(output, group, policy, values))
                continue
            except (QuarantineError, ValueError, TypeError, AttributeError):
                pass  # cannot clean with certainty: remove the plane instead
        _remove_group(output, group)
        actions.append("overlay_removed")
    return actions
