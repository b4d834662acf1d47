"""Re-identification risk of an export: k-anonymity and l-diversity over its quasi-identifiers.

The quasi-identifiers are those a manifest carries: age band, sex, region, shifted study
month, modality, manufacturer and model (a rare machine in a small region narrows a patient
down as well as an age does). k counts distinct patients (not rows) per combination, so
a patient with many instances does not hide himself behind his own slices. l counts the
distinct (sex, age band) values among the patients that share every other quasi-identifier.

When k is below the threshold the export is generalized one step at a time (study month ->
year -> none; 10-year -> 20-year age bands; model -> none; manufacturer -> none; 40-year age
bands). If
combinations with fewer than k patients remain, their patients are left out of the export (local
suppression, as ARX and sdcMicro do) provided they are at most `max_suppressed` of the
patients; otherwise the export is refused. Groups whose patients show fewer (sex, age band)
values than the l threshold are left out the same way (knowing someone is in such a group
would tell his sex and age). The card says how many were left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

QUASI_IDENTIFIERS = (
    "age_band",
    "sex",
    "region",
    "study_month",
    "modality",
    "manufacturer",
    "model",
)
SENSITIVE = ("sex", "age_band")
SUPPRESSED = "*"

Record = Mapping[str, str]


def age_band(years: int | None, width: int = 10) -> str:
    if years is None or years < 0:
        return "unknown"
    start = years - years % width
    return f"{start}-{start + width - 1}"


def widen_age_band(band: str, width: int = 20) -> str:
    """A band into the wider band that holds it (40-49 -> 40-59 for 20 years)."""
    if band in ("unknown", SUPPRESSED):
        return band
    start = int(band.split("-")[0])
    return age_band(start, width)


def k_anonymity(records: Sequence[Record], fields: Sequence[str] = QUASI_IDENTIFIERS) -> int:
    """The smallest number of distinct patients sharing one combination of `fields`."""
    groups: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for record in records:
        groups[tuple(record[f] for f in fields)].add(record["patient"])
    return min((len(p) for p in groups.values()), default=0)


def l_diversity(records: Sequence[Record]) -> int:
    """The smallest number of distinct (sex, age band) values among patients sharing every
    other quasi-identifier."""
    others = [f for f in QUASI_IDENTIFIERS if f not in SENSITIVE]
    groups: dict[tuple[str, ...], set[tuple[str, ...]]] = defaultdict(set)
    for record in records:
        groups[tuple(record[f] for f in others)].add(tuple(record[f] for f in SENSITIVE))
    return min((len(v) for v in groups.values()), default=0)


def _year(record: Record) -> dict[str, str]:
    month = record["study_month"]
    return {"study_month": month[:4] if month not in ("unknown", SUPPRESSED) else month}


Step = tuple[str, Callable[[Record], dict[str, str]]]
GENERALIZATIONS: tuple[Step, ...] = (
    ("study month -> year", _year),
    ("age band -> 20 years", lambda r: {"age_band": widen_age_band(r["age_band"])}),
    ("study date suppressed", lambda r: {"study_month": SUPPRESSED}),
    ("model suppressed", lambda r: {"model": SUPPRESSED}),
    ("manufacturer suppressed", lambda r: {"manufacturer": SUPPRESSED}),
    ("age band -> 40 years", lambda r: {"age_band": widen_age_band(r["age_band"], 40)}),
)


@dataclass(frozen=True)
class Protection:
    """`kept[i]` is the index in the input of `records[i]`; no records: refused."""

    records: list[dict[str, str]]
    kept: list[int]
    k: int
    l_diversity: int
    steps: tuple[str, ...]
    suppressed_patients: int = 0

    @property
    def refused(self) -> bool:
        return not self.records


def _small_class_patients(records: Sequence[Record], threshold: int) -> set[str]:
    groups: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for record in records:
        groups[tuple(record[f] for f in QUASI_IDENTIFIERS)].add(record["patient"])
    return {p for members in groups.values() if len(members) < threshold for p in members}


def _low_diversity_patients(records: Sequence[Record], threshold: int) -> set[str]:
    """The patients of groups (all quasi-identifiers but sex and age band) whose patients
    show fewer than `threshold` distinct (sex, age band) values: knowing a patient is in the
    group would tell his sex and age."""
    if threshold <= 1:
        return set()
    others = [f for f in QUASI_IDENTIFIERS if f not in SENSITIVE]
    values: dict[tuple[str, ...], set[tuple[str, ...]]] = defaultdict(set)
    members: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for record in records:
        key = tuple(record[f] for f in others)
        values[key].add(tuple(record[f] for f in SENSITIVE))
        members[key].add(record["patient"])
    return {p for key, v in values.items() if len(v) < threshold for p in members[key]}


def protect(
    records: Sequence[Record],
    threshold: int,
    *,
    l_threshold: int = 1,
    max_suppressed: float = 0.05,
) -> Protection:
    """The records generalized (then locally suppressed) until k >= threshold and
    l >= l_threshold; refused (no records) if that would leave out more than
    `max_suppressed` of the patients."""
    current = [dict(r) for r in records]
    kept = list(range(len(current)))
    steps: list[str] = []
    k = k_anonymity(current)
    for name, step in GENERALIZATIONS:
        if k >= threshold:
            break
        current = [{**r, **step(r)} for r in current]
        steps.append(name)
        k = k_anonymity(current)
    patients = len({r["patient"] for r in current})
    suppressed: set[str] = set()
    reasons: set[str] = set()
    # A patient left out also leaves the other combinations his instances were in, which
    # may fall under k (or l) in turn: repeat until none is small.
    while True:
        small = _small_class_patients(current, threshold)
        uniform = _low_diversity_patients(current, l_threshold) - small
        if not small and not uniform:
            break
        if small:
            reasons.add("small combinations suppressed")
        if uniform:
            reasons.add("low-diversity groups suppressed")
        suppressed |= small | uniform
        if len(suppressed) > max_suppressed * patients:
            return Protection(
                [], [], k_anonymity(current), l_diversity(current), tuple(steps), len(suppressed)
            )
        pairs = [
            (i, r)
            for i, r in zip(kept, current, strict=True)
            if r["patient"] not in small and r["patient"] not in uniform
        ]
        kept = [i for i, _ in pairs]
        current = [r for _, r in pairs]
    steps.extend(sorted(reasons, reverse=True))
    return Protection(
        current, kept, k_anonymity(current), l_diversity(current), tuple(steps), len(suppressed)
    )
