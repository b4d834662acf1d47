"""Before/after pictures of what a pixel policy does to an image, for data stewards.

The pictures show the patient's own burned-in text (the "before" side): they are for a
steward on the hospital side, never for the archive.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Collection

from PIL import Image, ImageDraw
from pydicom import dcmread
from pydicom.dataset import Dataset

from anonymizer.errors import QuarantineError

from . import codec, mask
from .clean import display_frame, run
from .policy import PixelPolicy

_OUTLINE = (255, 64, 64)
_GAP = 8


def _rgb(frames: codec.Frames, index: int) -> Image.Image:
    return Image.fromarray(display_frame(frames, index)).convert("RGB")


def side_by_side(before: Image.Image, after: Image.Image, boxes: list[mask.Rect]) -> bytes:
    """PNG: `before` and `after` next to each other, masked boxes outlined on both."""
    canvas = Image.new("RGB", (before.width + after.width + _GAP, before.height), (40, 40, 40))
    canvas.paste(before, (0, 0))
    canvas.paste(after, (before.width + _GAP, 0))
    pen = ImageDraw.Draw(canvas)
    for x, y, w, h in boxes:
        for offset in (0, before.width + _GAP):
            pen.rectangle((x + offset, y, x + offset + w - 1, y + h - 1), outline=_OUTLINE)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def preview_dataset(
    ds: Dataset, policy: PixelPolicy, identifying_values: Collection[str] = ()
) -> list[tuple[str, bytes]]:
    """(name, PNG) per previewed frame; names carry the action, frame number, no PHI.

    Multi-frame images show the first frame. A quarantine decision is shown as a single
    picture named after its reason, with the image as received.
    """
    output = copy.deepcopy(ds)
    try:
        result = run(ds, output, policy, identifying_values, keep_before=True)
    except QuarantineError as exc:
        name = f"quarantine-{exc.reason.value}.png"
        try:
            image = _rgb(codec.decode(copy.deepcopy(ds), policy.max_decoded_mb * 2**20), 0)
        except QuarantineError:
            return [(name, _placeholder())]
        return [(name, side_by_side(image, image, []))]
    if result.before is None or result.after is None:
        return []  # not examined: the pixels would not change
    boxes = mask.boxes_of(result.masks[0]) if result.masks else []
    kind = "rule" if any(a.startswith("rule_mask") for a in result.actions) else "ocr"
    png = side_by_side(_rgb(result.before, 0), _rgb(result.after, 0), boxes)
    return [(f"{kind}-{len(boxes)}-boxes-frame-1.png", png)]


def preview_pngs(data: bytes, policy: PixelPolicy) -> list[tuple[str, bytes]]:
    """Preview of one Part 10 file's bytes: [(name without PHI, PNG bytes)], empty when
    the policy does not examine the image (nothing would change)."""
    try:
        ds = dcmread(io.BytesIO(data), force=True)
        readable = "SOPClassUID" in ds
    except Exception:  # not DICOM, truncated: say so instead of failing the whole preview
        readable = False
    if not readable:
        return [("quarantine-unreadable.png", _placeholder())]
    return preview_dataset(ds, policy, _identifying_values(ds))


def _placeholder() -> bytes:
    """A small grey picture for inputs whose pixels cannot be shown."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (40, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def _identifying_values(ds: Dataset) -> list[str]:
    """The instance's own identifying strings, so verification works as in the worker."""
    values: list[str] = []
    keywords = (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "InstitutionName",
        "AccessionNumber",
        "OtherPatientIDs",
        "ReferringPhysicianName",
    )
    for keyword in keywords:
        value = ds.get(keyword)
        if value:
            text = str(value)
            values.append(text)
            values.extend(p for p in text.replace("^", " ").split() if p)
    return values
