"""Patient-level splits: train / validation / test by a keyed hash of the patient pseudonym.

Within each stratum (region, sex, age band) patients are ordered by HMAC-SHA256(key,
pseudonym) and cut by the proportions, largest remainder first. So a patient is in exactly
one split, the same catalog and key give the same splits, and every stratum is split in the
asked proportions (to one patient), which a plain hash threshold only does on average.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import defaultdict
from collections.abc import Hashable, Mapping

SPLITS = ("train", "validation", "test")
DEFAULT_PROPORTIONS: dict[str, float] = {"train": 0.7, "validation": 0.15, "test": 0.15}


def check_proportions(proportions: Mapping[str, float]) -> dict[str, float]:
    unknown = set(proportions) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s): {', '.join(sorted(unknown))}")
    if any(p < 0 for p in proportions.values()):
        raise ValueError("split proportions must not be negative")
    total = sum(proportions.values())
    if not 0.999 <= total <= 1.001:
        raise ValueError(f"split proportions must add up to 1 (they add up to {total:.3f})")
    return {name: float(proportions.get(name, 0.0)) for name in SPLITS}


def patient_rank(key: bytes, pseudonym: str) -> str:
    return hmac.new(key, b"split\0" + pseudonym.encode("utf-8"), hashlib.sha256).hexdigest()


def _counts(n: int, proportions: Mapping[str, float]) -> dict[str, int]:
    exact = {name: n * proportions[name] for name in SPLITS}
    counts = {name: int(exact[name]) for name in SPLITS}
    by_remainder = sorted(SPLITS, key=lambda s: (-(exact[s] - counts[s]), SPLITS.index(s)))
    for name in by_remainder[: n - sum(counts.values())]:
        counts[name] += 1
    return counts


def assign_splits(
    key: bytes,
    patients: Mapping[str, Hashable],
    proportions: Mapping[str, float] = DEFAULT_PROPORTIONS,
) -> dict[str, str]:
    """pseudonym -> split, for `patients` given as pseudonym -> stratum."""
    shares = check_proportions(proportions)
    strata: dict[Hashable, list[str]] = defaultdict(list)
    for pseudonym, stratum in patients.items():
        strata[stratum].append(pseudonym)
    out: dict[str, str] = {}
    for members in strata.values():
        members.sort(key=lambda p: patient_rank(key, p))
        counts = _counts(len(members), shares)
        start = 0
        for name in SPLITS:
            for pseudonym in members[start : start + counts[name]]:
                out[pseudonym] = name
            start += counts[name]
    return out
