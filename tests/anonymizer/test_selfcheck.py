"""The self-check: an output holding any original identifying value is never archived."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest

from amana.errors import QuarantineError, QuarantineReason
from anonymizer.engine import Deidentifier, load_profile
from anonymizer.pseudonyms import key_from_bytes
from tests.anonymizer.conftest import profile_copy
from tests.anonymizer.factory import Identity, ct_instance, to_bytes


@pytest.fixture(scope="module")
def keeps_private(tmp_path_factory: pytest.TempPathFactory, profiles_dir: Path) -> Deidentifier:
    """ma-national plus Retain Safe Private with one (wrongly) 'safe' private element."""
    folder = tmp_path_factory.mktemp("profiles")
    profile_copy(
        folder, "site",
        "name: site\nextends: ma-national\npixel: null\n"
        "options: [retain_patient_characteristics, retain_device_identity,\n"
        "          retain_long_modified_dates, clean_descriptors, retain_safe_private]\n"
        "private:\n  keep:\n"
        "    - {creator: ACME VENDOR 1.0, group: '0019', element: '10', action: K}\n"
        "    - {creator: ACME VENDOR 1.0, group: '0019', element: '11', action: clean}\n",
    )
    return Deidentifier(load_profile("site", folder), key_from_bytes(b"s" * 32))


def assert_residual(engine: Deidentifier, data: bytes, secret: str) -> None:
    with pytest.raises(QuarantineError) as caught:
        engine.deidentify(data)
    assert caught.value.reason == QuarantineReason.RESIDUAL_PHI
    assert secret not in str(caught.value)


@pytest.mark.ocr
def test_name_in_a_kept_code_string_is_caught(national: Deidentifier) -> None:
    """Rule: a patient name written in an attribute the profile keeps (here a CS) is found
    by the self-check and the instance is quarantined as residual_phi, with no PHI in the
    message."""
    who = Identity(family="Zerhouni-Fictif")
    ds = ct_instance(who)
    ds.BodyPartExamined = "ZERHOUNI-FICTIF"
    assert_residual(national, to_bytes(ds), "ZERHOUNI")


def test_kept_private_element_with_identifier_is_caught(keeps_private: Deidentifier) -> None:
    """Rule: private elements kept by (creator, element) are still checked: an ID inside one
    quarantines the instance; a private element with action clean is cleaned instead."""
    who = Identity()
    ds = ct_instance(who)
    block = ds.private_block(0x0019, "ACME VENDOR 1.0", create=True)
    block.add_new(0x11, "LO", f"protocole {who.family}")
    outcome = keeps_private.deidentify(to_bytes(ds))
    assert who.family.encode() not in outcome.data
    assert b"ACME VENDOR 1.0" in outcome.data  # the creator of a kept block stays
    block.add_new(0x10, "LO", f"IPP {who.patient_id}")
    assert_residual(keeps_private, to_bytes(ds), who.patient_id)


def test_original_uid_in_a_kept_private_element_is_caught(keeps_private: Deidentifier) -> None:
    """Rule: an original UID that survives anywhere (a traceable UID) quarantines."""
    ds = ct_instance(Identity())
    block = ds.private_block(0x0019, "ACME VENDOR 1.0", create=True)
    block.add_new(0x10, "UI", ds.StudyInstanceUID)
    assert_residual(keeps_private, to_bytes(ds), ds.StudyInstanceUID)


@pytest.mark.ocr
def test_unknown_private_blocks_are_removed(national: Deidentifier) -> None:
    """Rule: private elements are removed unless a profile keeps them by creator/element."""
    who = Identity()
    ds = ct_instance(who)
    block = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
    block.add_new(0x39, "IS", [1, 2, 3, 4])
    outcome = national.deidentify(to_bytes(ds))
    assert b"GEMS_PARM_01" not in outcome.data


@pytest.mark.ocr
def test_sequence_encoded_as_un_is_walked(national: Deidentifier) -> None:
    """Rule: a known sequence received with VR UN (as relayed by some archives) is decoded
    and scrubbed like any sequence: the identifiers inside are not copied through."""
    import struct

    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    from tests.anonymizer.factory import item

    who = Identity()
    inner = DicomBytesIO()
    inner.is_little_endian, inner.is_implicit_VR = True, True
    write_dataset(inner, item(PatientID="QJ77441199", IssuerOfPatientID="ZQ-HOSP-X"))
    body = inner.getvalue()
    value = struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body
    data = to_bytes(ct_instance(who))
    # splice Other Patient IDs Sequence in as an explicit-VR UN element, in tag order
    parsed = pydicom.dcmread(io.BytesIO(data))
    after = min(t for t in parsed.keys() if t > 0x00101002)  # noqa: SIM118 - tags, not elements
    raw = parsed.get_item(after)
    start = raw.value_tell - (12 if raw.VR in ("OB", "OW", "SQ", "UN", "UT", "UC") else 8)
    element = struct.pack("<HH", 0x0010, 0x1002) + b"UN\x00\x00" + struct.pack("<I", len(value))
    data = data[:start] + element + value + data[start:]
    assert b"\x10\x00\x02\x10UN" in data
    outcome = national.deidentify(data)
    assert b"QJ77441199" not in outcome.data
    assert b"ZQ-HOSP-X" not in outcome.data


def test_overlay_bitmaps_need_the_pixel_step(national_tag_only: Deidentifier) -> None:
    """Rule: overlay bitmaps may hold burned-in text; a tag-only profile (no pixel step to
    examine them) removes them even under Clean Graphics, and cleans the overlay's text."""
    who = Identity()
    ds = ct_instance(who)
    ds.add_new(0x60000010, "US", 16)
    ds.add_new(0x60000011, "US", 16)
    ds.add_new(0x60000022, "LO", f"contour {who.family}")
    ds.add_new(0x60003000, "OW", b"\x55" * 32)
    out = pydicom.dcmread(io.BytesIO(national_tag_only.deidentify(to_bytes(ds)).data))
    assert 0x60003000 not in out
    assert who.family not in str(out.get(0x60000022).value)


@pytest.mark.ocr
def test_amana_record_text_is_not_a_leak(national: Deidentifier) -> None:
    """Rule: a patient whose name is a word of Amana's own record ("Patient", "Option")
    is not quarantined for it; the name itself is still gone."""
    who = Identity(family="Patient", given="Option")
    outcome = national.deidentify(to_bytes(ct_instance(who)))
    out = pydicom.dcmread(io.BytesIO(outcome.data))
    assert "Patient" not in str(out.PatientName)
    assert "Option" not in str(out.get("StudyDescription", ""))
