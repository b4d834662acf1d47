"""What the pixel step will do to one instance, told to a steward (`explain`, dry run).

Read from the header alone with the engine's own decisions (`examination_decision`, the
device rules' `matching`, the policy's OCR settings), so that what is told is what runs.
Nothing here decodes pixels; what only decoding can tell (OCR's boxes, the verification)
is the outcome's to say. No PHI: rule ids, codes and technical header values only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from io import BytesIO
from typing import Literal

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID

from anonymizer.errors import QuarantineError

from .policy import PixelPolicy
from .rules import rules_for
from .selection import examination_decision

Step = Literal["none", "not_examined", "device_rules", "ocr", "quarantine"]

_NOT_EXAMINED = {
    "no_pixel_data": "no pixel data",
    "not_examined_sop_class": "its SOP class holds computed values or labels, not a picture",
}


@dataclass(frozen=True)
class PixelPlan:
    """`step` is the main thing done; `details` are the lines a steward reads."""

    step: Step
    reason: str
    details: tuple[str, ...] = field(default=())


def pixel_plan_of_bytes(data: bytes, policy: PixelPolicy | None) -> PixelPlan:
    """The plan for an encoded instance (a sample file)."""
    if policy is None:
        return pixel_plan(Dataset(), None)
    try:
        ds = dcmread(BytesIO(data), force=True)
    except Exception:  # noqa: BLE001 - an unreadable sample is the outcome's to explain
        return PixelPlan("quarantine", "the file cannot be parsed")
    return pixel_plan(ds, policy)


def pixel_plan(ds: Dataset, policy: PixelPolicy | None) -> PixelPlan:
    """The plan for the untouched header `ds` under `policy` (None: a tag-only profile)."""
    if policy is None:
        return PixelPlan("none", "the profile has no pixel step (tag-only)")
    try:
        rules = rules_for(policy)
    except QuarantineError as exc:
        return PixelPlan("quarantine", f"{exc.reason.value}: {exc.message}")
    examined, why_not = examination_decision(ds, policy, rules)
    side = _side_channels(policy)
    if examined is None:
        reason = _NOT_EXAMINED.get(why_not) or _no_sign(ds, why_not)
        return PixelPlan("not_examined", reason, ("Pixel Data is not decoded", *side))
    details = [f"examined because: {examined}"]
    masked = rules.matching(ds, "mask")
    for rule in masked:
        boxes = ", ".join("whole frame" if r == "all" else "box" for r in rule.regions)
        keep = "; Sequence of Ultrasound Regions kept" if rule.keep_ultrasound_regions else ""
        details.append(
            f"device rule {rule.id} ({rule.label}): {len(rule.regions)} region(s) "
            f"masked [{boxes}]{keep}"
        )
    ocr_runs = (not masked or policy.ocr_after_rule) and policy.ocr.enabled
    if not masked and not policy.ocr.enabled:
        return PixelPlan(
            "quarantine",
            "pixel_policy: the image must be examined, no device rule matches and OCR is "
            "disabled",
            tuple(details),
        )
    if ocr_runs:
        details.append(_ocr_line(policy))
    if policy.verify and policy.ocr.enabled:
        details.append("masked frames read again by OCR; an identifying value still read "
                       "quarantines the instance; then Burned In Annotation NO")
    else:
        details.append("not verified by OCR (Burned In Annotation left as it was)")
    if str(ds.get("Modality", "")).strip().upper() in {m.upper() for m in policy.forbid_text_in}:
        details.append("any text read after masking quarantines it (modality forbids text)")
    details.extend(side)
    step: Step = "device_rules" if masked else "ocr"
    reason = (
        ", ".join(rule.id for rule in masked) if masked else "no device rule matches"
    ) + f" (examined: {examined})"
    return PixelPlan(step, reason, tuple(details))


def _ocr_line(policy: PixelPolicy) -> str:
    ocr = policy.ocr
    unread = "; unread text-like lines masked too" if ocr.mask_unread_lines else ""
    detect = ocr.for_detection().languages
    detection = f"; text found in {'+'.join(detect)}" if detect != ocr.languages else ""
    return (
        f"OCR ({'+'.join(ocr.languages)}{detection}, engine {ocr.engine}) on up to "
        f"{ocr.sample_frames} "
        f"sampled frame(s) (first, last, evenly between) and on every other frame whose "
        f"text areas differ from the frames read; every frame masked; words masked with a "
        f"{ocr.margin}px margin{unread}"
    )


def _side_channels(policy: PixelPolicy) -> tuple[str, ...]:
    lines = [f"overlay planes, if any: {policy.overlays}"]
    if policy.remove_icon_images:
        lines.append("icon image, if any: removed")
    return tuple(lines)


_LEFT_ALONE = {
    "primary_slice": "a primary cross-sectional slice without Burned In Annotation YES",
    "flag_no": "Burned In Annotation NO on an image of no kind that carries text",
}


def _no_sign(ds: Dataset, why_not: str) -> str:
    """Why an image with pixels is left alone: the header values the decision read. All
    are coded technical values (CS, a standard SOP class), never a person's."""
    modality = str(ds.get("Modality", "") or "").strip() or "absent"
    sop_class = str(ds.get("SOPClassUID", "") or "").strip()
    sop_name = UID(sop_class).name if sop_class else "absent"
    image_type = ds.get("ImageType")
    image_type_text = (
        "\\".join(str(v) for v in image_type) if image_type is not None and not
        isinstance(image_type, str) else str(image_type or "absent")
    )
    flag = str(ds.get("BurnedInAnnotation", "") or "").strip() or "absent"
    summary = _LEFT_ALONE.get(why_not, "no sign of burned-in text")
    return (
        f"{summary}: modality {modality}, SOP class {sop_name}, image type "
        f"{image_type_text}, Burned In Annotation {flag}, no device rule matches"
    )
