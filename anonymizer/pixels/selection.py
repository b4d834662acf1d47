"""Which images are examined for burned-in text, from their headers alone.

What an image is decides, not the Burned In Annotation flag alone: devices leave it out or
say NO on screens full of names. Every image that can carry text is examined; only
primary CT/MR/PT/NM slices without the flag YES, and images flagged NO that are of no
text-carrying kind, are left alone. Those are not decoded at all: their Pixel Data bytes
stay untouched and cost nothing here. docs/pixels.md, "What is examined and why".
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


# Modalities whose ORIGINAL\PRIMARY images are reconstructed slices: the scanner writes
# its annotations in a viewer's overlay, not in the reconstructed values.
CROSS_SECTIONAL_MODALITIES = frozenset({"CT", "MR", "PT", "NM"})
# Image Type value 3 (the image flavour) of a cross-sectional slice. A localizer, scout
# or planar NM view is a projection, where vendors do draw labels; MR's legacy value 3 is
# vendor-defined (M, P, ND, NORM...) and only a capture kind there makes it examined.
SLICE_FLAVOURS = frozenset(
    {"AXIAL", "VOLUME", "TRANSVERSE", "TOMO", "RECON TOMO", "GATED TOMO", "RECON GATED TOMO"}
)
# Values that name a picture of something rather than an acquisition (checked whatever
# the profile's `image_types` say, so a narrowed list cannot exempt a localizer).
CAPTURE_KINDS = frozenset(
    {"SECONDARY", "DERIVED", "LOCALIZER", "SCOUT", "SCREEN SAVE", "SAVE", "OTHER"}
)


def primary_slice(ds: Dataset) -> bool:
    """A reconstructed CT/MR/PT/NM slice as acquired: the only kind that is left
    unexamined when Burned In Annotation is absent."""
    if _text(ds, "Modality") not in CROSS_SECTIONAL_MODALITIES:
        return False
    values = _image_type_values(ds)
    if values[:2] != ["ORIGINAL", "PRIMARY"] or any(v in CAPTURE_KINDS for v in values):
        return False
    if _text(ds, "Modality") == "MR":
        return True
    return len(values) < 3 or values[2] in SLICE_FLAVOURS


def examination_decision(
    ds: Dataset, policy: PixelPolicy, rules: RuleSet
) -> tuple[str | None, str]:
    """(why `ds` is examined, "") or (None, why it is not): short codes without PHI.
    The one decision the engine takes and `explain` reports.

    Order matters: the flag YES always examines; label and computed-value objects are never
    examined otherwise; any sign of an image kind that carries text examines whatever the
    flag says (a NO on ultrasound is not trusted); only then may the flag exempt: NO for
    any image, absent only for a primary cross-sectional slice.
    """
    if not has_pixels(ds):
        return None, "no_pixel_data"
    flag = _text(ds, "BurnedInAnnotation")
    if flag == "YES":
        return "burned_in_flag", ""
    if str(ds.get("SOPClassUID", "")).strip() in set(policy.not_examined_sop_classes):
        return None, "not_examined_sop_class"
    kind = _kind_sign(ds, policy, rules)
    if kind is not None:
        return kind, ""
    if flag == "NO":
        return None, "flag_no"
    if primary_slice(ds):
        return None, "primary_slice"
    # Any other image without a trustworthy flag may carry text (an unknown device, a
    # vendor's projection view, a scanned sheet sent under a modality of its own).
    return "flag_absent", ""


def _kind_sign(ds: Dataset, policy: PixelPolicy, rules: RuleSet) -> str | None:
    if _text(ds, "Modality") in {m.upper() for m in policy.modalities}:
        return "modality"
    if str(ds.get("SOPClassUID", "")).strip() in set(policy.sop_classes):
        return "sop_class"
    values = _image_type_values(ds)
    joined = "\\".join(values)
    for wanted in policy.image_types:
        w = wanted.strip().upper()
        if w and (w in values or (" " in w and w in joined)):
            return "image_type"
    if embedded_overlay(ds):
        return "embedded_overlay"
    mask, examine = rules.classify(ds)
    if mask:
        return "device_rule"
    if examine:
        return f"sign:{examine[0].id}"
    return None
