"""Presentation helpers for `profile explain`, the dry run and `profile diff` (no I/O).

The command line and the HTTP dry run show a sample's values through the same functions
here, so that what one masks the other masks too.
"""

from __future__ import annotations

from anonymizer.identity import IDENTITY_KEYWORDS
from anonymizer.pixels.plan import PixelPlan
from anonymizer.rules import Op, Rule

# Value representations whose values identify someone or link back to the source (names,
# UIDs, dates, free text, application entities, opaque bytes), whatever the profile does.
_IDENTIFYING_VRS = frozenset(
    ("PN", "UI", "DA", "DT", "ST", "LT", "UT", "UC", "AE", "UN", "OB", "OW", "OD", "OF", "OL")
)
MAX_SHOWN = 120


def rule_label(rule: Rule | None) -> str:
    if rule is None:
        return "X (not named)"
    label = rule.action
    if rule.option:
        label += f" [{rule.option}]"
    if rule.op.name.lower() not in label.lower():
        label += f" → {rule.op.name.lower()}"
    return label


def _text(value: object) -> str:
    return value.decode("latin-1", "replace") if isinstance(value, bytes) else str(value)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _harmless_kind(tag: int, vr: str) -> bool:
    """A value of this attribute cannot identify anyone by its kind (a modality, a
    manufacturer, a slice thickness): not a name, UID, date, free text or identity
    attribute, and not a private element."""
    return vr not in _IDENTIFYING_VRS and tag not in IDENTITY_KEYWORDS and not (tag >> 16) & 1


def mask_before(
    tag: int, vr: str, rule: Rule | None, value: object, after: object = None, limit: int = 60
) -> str:
    """The original value when it leaves the pipeline as it came (kept, or cleaned without
    finding anything to remove: the output shows it anyway) and cannot identify anyone by
    its kind; otherwise only its shape."""
    if value is None:
        return ""
    text = _text(value)
    unchanged = rule is not None and (
        rule.op == Op.KEEP or (after is not None and _text(after) == text)
    )
    if unchanged and _harmless_kind(tag, vr):
        return _shorten(text, limit)
    if text in ("", "<sequence>"):
        return text
    return f"<masked {vr}, {len(text)} chars>"


def shown_after(
    tag: int, vr: str, rule: Rule | None, before: object, after: object, limit: int = 60
) -> str | None:
    """The output value (None when removed). A value that came out as it went in while
    its before-value is masked is masked too: a profile keeping an identifier by mistake
    must not make the explanation print it."""
    if after is None:
        return None
    if isinstance(after, bytes) and vr in ("OB", "OW", "UN", "OD", "OF", "OL"):
        return f"<{len(after)} bytes>"
    text = _text(after)
    if before is not None and text == _text(before) and not _harmless_kind(tag, vr):
        return mask_before(tag, vr, None, before)
    return _shorten(text, limit)


def explain_cells(
    tag: int, vr: str, rule: Rule | None, before: object, after: object, limit: int = 60
) -> tuple[str, str | None]:
    """(before, after) of one explain row as shown on the command line and over HTTP."""
    return (
        mask_before(tag, vr, rule, before, after, limit),
        shown_after(tag, vr, rule, before, after, limit),
    )


def pixel_plan_rows(plan: PixelPlan) -> list[tuple[str, str]]:
    """The pixel step as (label, text) rows for a table."""
    rows = [("pixel step", f"{plan.step}: {plan.reason}")]
    rows.extend(("", detail) for detail in plan.details)
    return rows
