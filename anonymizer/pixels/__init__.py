"""Burned-in text: the pixel policy of a profile and its application.

CONTRACT (signatures are fixed):
- `PixelPolicy`: pydantic model (extra="forbid") for the `pixel:` section of a profile.
- `clean_pixels(original, output, policy, identifying_values)` mutates `output` (already
  header-scrubbed) and returns the pixel actions taken; raises QuarantineError when the
  pixels cannot be cleaned with certainty.

The flow for one instance (clean.py): headers decide whether it is examined
(selection.py); if not, Pixel Data is never decoded. Otherwise a matching device rule
masks its rectangles, or OCR finds words to mask; the masked frames are read again
(verification) and any identifying value still read quarantines the instance. Masked
frames are written back losslessly (codec.py).

This module stays light (pydantic, PyYAML, pydicom): numpy, scipy and the OCR engine are
imported on the first image that is cleaned.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset

from anonymizer.errors import QuarantineError

from .policy import OcrSettings, PixelPolicy, bind_rules_dir
from .rules import RuleSet, load_pixel_rules, rules_for
from .sampling import PixelMode

if TYPE_CHECKING:  # numpy and the OCR types load with the first cleaned image
    from .trace import PixelTrace

__all__ = [
    "OcrSettings",
    "PixelMode",
    "PixelPolicy",
    "RuleSet",
    "bind_rules_dir",
    "clean_pixels",
    "lint_pixel_policy",
    "load_pixel_rules",
    "rules_for",
]


def examination_needed(original: Dataset, policy: PixelPolicy) -> bool:
    """Whether `clean_pixels` would examine this image (decode it, apply rules or OCR),
    judged on the untouched header. Cheap: no pixel data and no numpy."""
    from .selection import examination_reason

    return examination_reason(original, policy, rules_for(policy)) is not None


def clean_pixels(
    original: Dataset | None,
    output: Dataset,
    policy: PixelPolicy,
    identifying_values: Collection[str],
    *,
    trace: PixelTrace | None = None,
    mode: PixelMode = PixelMode.AUTO,
) -> tuple[str, ...]:
    """Apply `policy` to `output` (header-scrubbed; `original` is left untouched) and
    return the actions taken, e.g. ("not_examined",) or ("examined:modality",
    "ocr_mask:3_boxes", "verified", "reencoded:<transfer syntax>").

    `original` is None when the caller already found with `examination_needed` that the
    image is not examined: only overlays and icons are then handled, and the engine does
    not have to keep a second parsed copy of every instance. `trace` records what was
    seen and decided, for a steward's preview (trace.py). `mode` is what the image's
    series asks beyond its header (sampling.py): a screen or the full examination."""
    from .clean import run

    return tuple(run(original, output, policy, identifying_values, trace=trace, mode=mode).actions)


def sampled_slice(original: Dataset, policy: PixelPolicy) -> bool:
    """Whether this slice's series is sampled rather than left unexamined (sampling.py).
    Cheap: the header only."""
    from .sampling import sampled_slice as _sampled

    return _sampled(original, policy, rules_for(policy))


def prepare_pixels(policy: PixelPolicy) -> None:
    """Import the pixel machinery (numpy, scipy, OCR bindings) and parse the device rules
    now. A worker calls this before it forks its pool, so every process shares them and the
    first instance is not seconds slower than the rest. A rule file problem is left for the
    jobs to report (they quarantine with pixel_policy)."""
    from . import clean  # noqa: F401  (numpy, scipy and the OCR bindings)

    try:
        rules_for(policy)
    except QuarantineError:
        return


def lint_pixel_policy(policy: PixelPolicy) -> list[str]:
    """Problems a steward should fix before activating a profile (empty when none):
    rule files or an allow-list that are missing or malformed, OCR languages that are
    not installed."""
    problems: list[str] = []
    try:
        rules_for(policy)
    except QuarantineError as exc:
        problems.append(f"pixel rules: {exc.message}")
    from .allowlist import allowlist_for  # imports numpy via the OCR word type

    try:
        allowlist_for(policy)
    except QuarantineError as exc:
        problems.append(f"pixel allow-list: {exc.message}")
    if policy.ocr.enabled:
        from .tesseract import tessdata_dir

        for settings in (policy.ocr, policy.ocr.for_detection()):
            if tessdata_dir(settings) is None:
                problems.append("OCR languages not installed: " + ", ".join(settings.languages))
    return problems
