"""Per-VR facts: dummy values (action D), maximum lengths, which VRs hold text."""

from __future__ import annotations

from typing import Any

TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "CS", "AE", "UR"})
FREE_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC"})
DATE_VRS = frozenset({"DA", "DT"})
BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN", "OB or OW", "US or OW"})

# PS3.5 Table 6.2-1 maximum lengths (characters) of one value; UT/UC/UR are unbounded.
MAX_LENGTH = {"AE": 16, "CS": 16, "SH": 16, "LO": 64, "ST": 1024, "LT": 10240, "PN": 64}

# Dummies are fixed strings so that output stays deterministic and obviously synthetic.
_DUMMIES: dict[str, Any] = {
    "AE": "AMANA",
    "AS": "000Y",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "DS": "0",
    "IS": "0",
    "LO": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "UC": "ANONYMIZED",
    "UR": "urn:amana:anonymized",
    "PN": "ANONYMIZED",
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "UV": 0,
    "SV": 0,
    "FL": 0.0,
    "FD": 0.0,
    "AT": 0,
}


def dummy_for(vr: str) -> Any:
    """A valid non-identifying value for `vr` (binary VRs get two zero bytes)."""
    if vr in _DUMMIES:
        return _DUMMIES[vr]
    if vr == "US or SS":
        return 0
    return b"\x00\x00"


def truncate(text: str, vr: str) -> str:
    limit = MAX_LENGTH.get(vr)
    return text if limit is None or len(text) <= limit else text[:limit].rstrip()
