"""Fuzzing parse -> scrub: mutated files never escape as anything but a quarantine decision."""

from __future__ import annotations

import io
from datetime import timedelta
from functools import cache

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from amana.errors import QuarantineError
from anonymizer.engine import Deidentifier, load_profile
from anonymizer.outcome import PseudonymKey
from tests.paths import REPO_ROOT

pytestmark = pytest.mark.ocr

SEEDS = ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "rtplan.dcm", "JPEG2000.dcm"]
NAME = b"Fuzzcible^Amina"
PATIENT_ID = b"FUZZ-000042"


@cache
def engine() -> Deidentifier:
    key = PseudonymKey(secret=b"f" * 32, key_id="fuzz")
    return Deidentifier(load_profile("ma-national", REPO_ROOT / "profiles"), key)


@cache
def seed_bytes(name: str) -> bytes:
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.PatientName = NAME.decode()
    ds.PatientID = PATIENT_ID.decode()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


mutation = st.tuples(
    st.sampled_from(["flip", "cut", "insert", "overwrite"]),
    st.floats(min_value=0.0, max_value=1.0),
    st.binary(min_size=1, max_size=16),
)


def mutate(data: bytes, steps: list[tuple[str, float, bytes]]) -> bytes:
    buf = bytearray(data)
    for kind, where, payload in steps:
        pos = int(where * max(0, len(buf) - 1))
        if kind == "flip" and buf:
            buf[pos] ^= payload[0] or 0xFF
        elif kind == "cut":
            del buf[pos:]
        elif kind == "insert":
            buf[pos:pos] = payload
        else:
            buf[pos : pos + len(payload)] = payload
    return bytes(buf)


@settings(
    max_examples=150,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.sampled_from(SEEDS), steps=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_input_is_archived_clean_or_quarantined(
    seed: str, steps: list[tuple[str, float, bytes]]
) -> None:
    """Rules: parse -> scrub never raises anything but QuarantineError and never hangs
    (deadline); whatever it does archive holds neither the patient's name nor ID."""
    data = mutate(seed_bytes(seed), steps)
    try:
        outcome = engine().deidentify(data)
    except QuarantineError as exc:
        assert NAME.decode() not in exc.message and PATIENT_ID.decode() not in exc.message
        return
    assert NAME not in outcome.data
    assert PATIENT_ID not in outcome.data
