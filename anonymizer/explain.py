"""Presentation helpers for `profile explain` and `profile diff` (no I/O)."""

from __future__ import annotations

from anonymizer.identity import IDENTITY_KEYWORDS
from anonymizer.rules import Op, Rule


def rule_label(rule: Rule | None) -> str:
    if rule is None:
        return "X (not named)"
    label = rule.action
    if rule.option:
        label += f" [{rule.option}]"
    if rule.op.name.lower() not in label.lower():
        label += f" → {rule.op.name.lower()}"
    return label


def mask_before(tag: int, vr: str, rule: Rule | None, value: object) -> str:
    """The original value, unless it may identify someone: then only its shape."""
    if value is None:
        return ""
    text = value.decode("latin-1", "replace") if isinstance(value, bytes) else str(value)
    identifying = (
        vr in ("PN", "UI", "DA", "DT", "LO", "SH", "ST", "LT", "UT", "UC", "AE", "UN", "OB")
        or tag in IDENTITY_KEYWORDS
        or (tag >> 16) & 1
    )
    if rule is not None and rule.op == Op.KEEP and not identifying:
        return text if len(text) <= 60 else text[:57] + "..."
    if text in ("", "<sequence>"):
        return text
    return f"<masked {vr}, {len(text)} chars>"
