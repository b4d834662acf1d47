"""A steward's dry run: a profile version on sample files, nothing stored."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from anonymizer.engine import Deidentifier, key_from_bytes
from anonymizer.explain import explain_cells
from anonymizer.outcome import Outcome
from anonymizer.pixels.plan import pixel_plan_of_bytes
from anonymizer.pixels.preview import masked_picture
from anonymizer.pixels.trace import PixelTrace
from anonymizer.profile_model import Profile

# Longer than the command line's cells: a browser wraps, a terminal table does not.
_SHOWN = 200


def dry_run(profile: Profile, samples: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """Run the profile on sample files with a throwaway key: the explain table (before-values
    masked as `amana profile explain` masks them), what the pixel step does, the outcome
    and, for an examined image, its pixels as they would be archived (masked areas
    outlined; never the original pixels nor the words OCR read, which stay with
    `amana anonymize --preview` on the hospital side). Nothing is stored or audited in
    detail."""
    deidentifier = Deidentifier(profile, key_from_bytes(secrets.token_bytes(32)))
    results = []
    for filename, data in samples:
        trace = PixelTrace()
        rows, outcome = deidentifier.explain(data, pixel_trace=trace)
        plan = pixel_plan_of_bytes(data, profile.pixel)
        entry: dict[str, Any] = {
            "file": filename,
            "explain": [_explain_row(r) for r in rows],
            "pixel_step": {"step": plan.step, "reason": plan.reason, "details": list(plan.details)},
        }
        if isinstance(outcome, Exception):
            entry["result"] = "quarantined"
            entry["reason"] = getattr(outcome, "reason", "processing_error")
            entry["message"] = getattr(outcome, "message", type(outcome).__name__)
            entry["preview_name"] = entry["preview_png"] = None
        else:
            entry["result"] = "archived"
            entry["pixel_actions"] = list(outcome.facts.pixel_actions)
            entry.update(_preview(profile, trace, outcome))
        results.append(entry)
    return results


def _explain_row(row: tuple[int, str, Any, object, object]) -> dict[str, Any]:
    tag, vr, rule, before, after = row
    shown_before, shown_after = explain_cells(tag, vr, rule, before, after, _SHOWN)
    return {
        "tag": f"({tag >> 16:04X},{tag & 0xFFFF:04X})",
        "vr": vr,
        "keyword": getattr(rule, "keyword", "") if rule is not None else "",
        "action": getattr(rule, "action", None) if rule is not None else "default: remove",
        "option": getattr(rule, "option", None) if rule is not None else None,
        "before": None if before is None else shown_before,
        "after": shown_after,
    }


def _preview(profile: Profile, trace: PixelTrace, outcome: Outcome) -> dict[str, str | None]:
    """The archived output's first frame, masked areas outlined, base64: None when the
    profile has no pixel step or does not examine the image (nothing changes)."""
    png: bytes | None = None
    if profile.pixel is not None:
        try:
            png = masked_picture(trace, outcome.data, profile.pixel.max_decoded_mb)
        except Exception:  # a picture is a convenience; the outcome above is the answer
            png = None
    if png is None:
        return {"preview_name": None, "preview_png": None}
    return {
        "preview_name": "masked-frame-1.png",
        "preview_png": base64.b64encode(png).decode("ascii"),
    }
