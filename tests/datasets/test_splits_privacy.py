"""Pure rules of datasets: patient-level splits and re-identification checks, as invariants
over generated catalogs of thousands of patients."""

from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from archive.datasets.privacy import QUASI_IDENTIFIERS, k_anonymity, l_diversity, protect
from archive.datasets.splits import SPLITS, assign_splits

REGIONS = [f"region-{i}" for i in range(12)]
BANDS = [f"{a}-{a + 9}" for a in range(20, 90, 10)]


def _patients(seed: int, n: int) -> dict[str, tuple[str, str, str]]:
    rng = random.Random(seed)
    return {
        f"{rng.getrandbits(128):032x}": (rng.choice(REGIONS), rng.choice("FM"), rng.choice(BANDS))
        for _ in range(n)
    }


proportions = (
    st.tuples(st.integers(0, 100), st.integers(0, 100), st.integers(0, 100))
    .filter(lambda t: sum(t) > 0)
    .map(lambda t: {s: v / sum(t) for s, v in zip(SPLITS, t, strict=True)})
)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(2000, 4000), shares=proportions)
def test_each_patient_in_one_split_reproducibly_and_every_stratum_split_in_proportion(
    seed: int, n: int, shares: dict[str, float]
) -> None:
    """Rule: a patient is in exactly one split, the same key gives the same splits, and in
    every (region, sex, age band) stratum each split holds its proportion to one patient."""
    patients = _patients(seed, n)
    key = seed.to_bytes(8, "big") * 4
    splits = assign_splits(key, patients, shares)
    assert set(splits) == set(patients)
    assert set(splits.values()) <= set(SPLITS)
    assert assign_splits(key, dict(reversed(list(patients.items()))), shares) == splits
    per_stratum: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    for pseudonym, split in splits.items():
        per_stratum[patients[pseudonym]][split] += 1
    for counts in per_stratum.values():
        size = sum(counts.values())
        for split in SPLITS:
            assert abs(counts[split] - size * shares[split]) < 1 + 1e-9


def test_another_key_gives_other_splits() -> None:
    """Rule: splits are keyed: without the key they cannot be predicted from pseudonyms."""
    patients = _patients(7, 3000)
    one = assign_splits(b"a" * 32, patients)
    other = assign_splits(b"b" * 32, patients)
    assert sum(one[p] != other[p] for p in patients) > len(patients) // 10


EQUIPMENT = (("ACME", "S9"), ("ACME", "S7"), ("Nadir", "NX"), ("unknown", "unknown"))


def _records(seed: int, n: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for patient, (region, sex, band) in _patients(seed, n).items():
        month = f"{rng.choice((2023, 2024))}{rng.randint(1, 12):02d}"
        maker, model = rng.choice(EQUIPMENT)
        for _ in range(rng.randint(1, 3)):
            out.append(
                {
                    "patient": patient,
                    "region": region,
                    "sex": sex,
                    "age_band": band,
                    "study_month": month,
                    "modality": rng.choice(("CT", "MR", "CR")),
                    "manufacturer": maker,
                    "model": model,
                }
            )
    return out


def _brute_k(records: list[dict[str, str]]) -> int:
    best = None
    for _, group in itertools.groupby(
        sorted(records, key=lambda r: [r[f] for f in QUASI_IDENTIFIERS]),
        key=lambda r: [r[f] for f in QUASI_IDENTIFIERS],
    ):
        size = len({r["patient"] for r in group})
        best = size if best is None else min(best, size)
    return best or 0


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    n=st.integers(50, 3000),
    threshold=st.integers(2, 10),
    l_threshold=st.integers(1, 3),
)
def test_protected_records_reach_k_or_are_refused(
    seed: int, n: int, threshold: int, l_threshold: int
) -> None:
    """Rule: an export's quasi-identifiers (manufacturer and model among them) have
    k >= threshold (k counted in patients) and l-diversity >= the profile's l, or the export
    is refused; generalization keeps every row in order, and suppression leaves out whole
    patients, at most 5% of them."""
    records = _records(seed, n)
    assert k_anonymity(records) == _brute_k(records)
    result = protect(records, threshold, l_threshold=l_threshold)
    if result.refused:
        assert result.k < threshold or result.l_diversity < l_threshold
        return
    assert _brute_k(result.records) == result.k >= threshold
    assert result.l_diversity >= l_threshold
    assert result.kept == sorted(result.kept)
    assert [r["patient"] for r in result.records] == [records[i]["patient"] for i in result.kept]
    left_out = {r["patient"] for r in records} - {r["patient"] for r in result.records}
    assert (
        len(left_out) == result.suppressed_patients <= 0.05 * len({r["patient"] for r in records})
    )
    assert not left_out & {records[i]["patient"] for i in result.kept}
    assert 1 <= result.l_diversity == l_diversity(result.records)
