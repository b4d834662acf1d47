"""Re-identification risk of an export: k-anonymity and l-diversity over its quasi-identifiers.

The quasi-identifiers are those a manifest carries: age band, sex, region, shifted study
month, modality and manufacturer. k counts distinct patients (not rows) per combination, so
a patient with many instances does not hide himself behind his own slices. l counts the
distinct (sex, age band) values among the patients that share every other quasi-identifier.

When k is below the threshold the export is generalized one step at a time (study month ->
year -> none; 10-year -> 20-year age bands; manufacturer -> none; 40-year age bands). If
combinations with fewer than k patients remain, their patients are left out of the export (local
suppression, as ARX and sdcMicro do) provided they are at most `max_suppressed` of the
patients; otherwise the export is refused. The card says how many were left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

QUASI_IDENTIFIERS = ("age_band", "sex", "region", "study_month", "modality", "manufacturer")
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


def protect(
    records: Sequence[Record], threshold: int, *, max_suppressed: float = 0.05
) -> Protection:
    """The records generalized (then locally suppressed) until k >= threshold; refused (no
    records) if that would leave out more than `max_suppressed` of the patients."""
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
    suppressed: set[str] = set()
    if k < threshold:
        patients = len({r["patient"] for r in current})
        # A patient left out also leaves the other combinations his instances were in, which
        # may fall under k in turn: repeat until none is small.
        while small := _small_class_patients(current, threshold):
            suppressed |= small
            if len(suppressed) > max_suppressed * patients:
                return Protection([], [], k, l_diversity(current), tuple(steps), len(suppressed))
            pairs = [
                (i, r) for i, r in zip(kept, current, strict=True) if r["patient"] not in small
            ]
            kept = [i for i, _ in pairs]
            current = [r for _, r in pairs]
        steps.append("small combinations suppressed")
        k = k_anonymity(current)
    return Protection(current, kept, k, l_diversity(current), tuple(steps), len(suppressed))
