"""Which images are examined for burned-in text, from their headers alone.

Images without any sign are not decoded at all: primary CT/MR/PT/NM series keep their
Pixel Data bytes untouched and cost nothing here.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from .policy import PixelPolicy
from .rules import RuleSet


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip().upper()


def _image_type_values(ds: Dataset) -> list[str]:
    value = ds.get("ImageType")
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip().upper() for v in value.split("\\")]
    return [str(v).strip().upper() for v in value]


def has_pixels(ds: Dataset) -> bool:
    return any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))


def embedded_overlay(ds: Dataset) -> bool:
    """An overlay stored in the unused high bits of Pixel Data (retired, still seen)."""
    for group in range(0x6000, 0x6020, 2):
        bit_position = ds.get((group, 0x0102))
        has_data = (group, 0x3000) in ds
        if bit_position is not None and not has_data:
            try:
                if int(bit_position.value or 0) > 0:
                    return True
            except (TypeError, ValueError):
                return True
    return False


def examination_reason(ds: Dataset, policy: PixelPolicy, rules: RuleSet) -> str | None:
    """Why `ds` must be examined (a short code without PHI), or None."""
    return examination_decision(ds, policy, rules)[0]


def examination_decision(
    ds: Dataset, policy: PixelPolicy, rules: RuleSet
) -> tuple[str | None, str]:
    """(why `ds` is examined, "") or (None, why it is not): short codes without PHI.
    The one decision the engine takes and `explain` reports."""
    if not has_pixels(ds):
        return None, "no_pixel_data"
    if _text(ds, "BurnedInAnnotation") == "YES":
        return "burned_in_flag", ""
    if str(ds.get("SOPClassUID", "")).strip() in set(policy.not_examined_sop_classes):
        return None, "not_examined_sop_class"
    if _text(ds, "Modality") in {m.upper() for m in policy.modalities}:
        return "modality", ""
    if str(ds.get("SOPClassUID", "")).strip() in set(policy.sop_classes):
        return "sop_class", ""
    values = _image_type_values(ds)
    joined = "\\".join(values)
    for wanted in policy.image_types:
        w = wanted.strip().upper()
        if w and (w in values or (" " in w and w in joined)):
            return "image_type", ""
    if embedded_overlay(ds):
        return "embedded_overlay", ""
    mask, examine = rules.classify(ds)
    if mask:
        return "device_rule", ""
    if examine:
        return f"sign:{examine[0].id}", ""
    return None, "no_sign"
