"""The engine on real files and on synthetic instances: invariants every output must meet."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from amana.errors import QuarantineError, QuarantineReason
from anonymizer.engine import Deidentifier
from anonymizer.paths import archive_relpath
from anonymizer.pseudonyms import key_from_bytes
from tests.anonymizer.factory import Identity, ct_instance, to_bytes

PYDICOM_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "MR_small_jp2klossless.dcm",
    "JPEG2000.dcm",
    "SC_rgb_small_odd.dcm",
    "SC_rgb_small_odd_big_endian.dcm",
    "SC_rgb_rle.dcm",
    "SC_rgb_gdcm_KY.dcm",
    "SC_rgb_jpeg.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "rtplan.dcm",
    "rtstruct.dcm",
    "rtdose.dcm",
    "image_dfl.dcm",
    "waveform_ecg.dcm",
    "liver_1frame.dcm",
    "JPEG2000-embedded-sequence-delimiter.dcm",
]
TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


def parse(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data))


@pytest.mark.ocr
@pytest.mark.parametrize("name", PYDICOM_FILES)
def test_pydicom_files_are_deidentified(national: Deidentifier, name: str) -> None:
    """Rule: every readable instance ends archived (with the de-identification record and new
    UIDs) or quarantined with a reason; the engine never crashes, and Pixel Data bytes are
    kept as received."""
    data = (TEST_FILES / name).read_bytes()  # the wheel's own files: no download
    original = pydicom.dcmread(io.BytesIO(data), force=True)
    try:
        outcome = national.deidentify(data)
    except QuarantineError as exc:
        assert exc.reason in set(QuarantineReason)
        return
    out = parse(outcome.data)
    assert out.PatientIdentityRemoved == "YES"
    assert out.SOPInstanceUID.startswith("2.25.")
    assert out.SOPInstanceUID != original.SOPInstanceUID
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert "SourceApplicationEntityTitle" not in out.file_meta
    assert out.file_meta.ImplementationVersionName == "AMANA_0.1"
    if "TransferSyntaxUID" in original.file_meta:
        assert out.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    if "PixelData" in original:
        assert out.PixelData == original.PixelData
    assert outcome.facts.sop_instance_uid == out.SOPInstanceUID
    assert national.key.key_id in list(out.DeidentificationMethod)[-1]


@pytest.mark.ocr
@pytest.mark.parametrize(
    "syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian]
)
def test_transfer_syntaxes_round_trip(national: Deidentifier, syntax: str) -> None:
    """Rule: the output keeps the input's transfer syntax and is itself readable; the
    self-check sees through deflate."""
    who = Identity()
    data = to_bytes(ct_instance(who), syntax)
    outcome = national.deidentify(data)
    out = parse(outcome.data)
    assert out.file_meta.TransferSyntaxUID == syntax
    assert out.PatientName != who.patient_name
    assert out.Rows == 16


@pytest.mark.ocr
def test_same_input_twice_gives_identical_bytes(national: Deidentifier) -> None:
    """Rule: de-identification is deterministic (same key + same input -> same bytes)."""
    data = to_bytes(ct_instance(Identity()))
    assert national.deidentify(data).data == national.deidentify(data).data


@pytest.mark.ocr
def test_a_different_key_gives_different_pseudonyms(national: Deidentifier) -> None:
    """Rule: pseudonyms depend on the key; the key id is recorded, never the secret."""
    data = to_bytes(ct_instance(Identity()))
    other = Deidentifier(national.profile, key_from_bytes(b"o" * 32))
    first, second = national.deidentify(data), other.deidentify(data)
    assert first.facts.patient_pseudonym != second.facts.patient_pseudonym
    assert first.facts.sop_instance_uid != second.facts.sop_instance_uid
    assert b"n" * 32 not in first.data
    assert first.facts.key_id == national.key.key_id != "n" * 32


def test_missing_uids_are_quarantined(national: Deidentifier) -> None:
    """Rule: an instance without its identifying UIDs cannot be archived consistently."""
    ds = ct_instance(Identity())
    del ds.StudyInstanceUID
    with pytest.raises(QuarantineError) as caught:
        national.deidentify(to_bytes(ds))
    assert caught.value.reason == QuarantineReason.MISSING_ATTRIBUTE


def test_garbage_is_not_dicom(national: Deidentifier) -> None:
    """Rule: bytes that are not DICOM are quarantined as not_dicom, with no PHI in the text."""
    with pytest.raises(QuarantineError) as caught:
        national.deidentify(b"Testpatient Fatima " * 20)
    assert caught.value.reason == QuarantineReason.NOT_DICOM
    assert "Testpatient" not in str(caught.value)


@pytest.mark.ocr
def test_what_was_done_is_recorded(national: Deidentifier) -> None:
    """Rule: each output records Patient Identity Removed, the method with profile name and
    version and key id, and the CID 7050 codes of the options applied."""
    out = parse(national.deidentify(to_bytes(ct_instance(Identity()))).data)
    profile = national.profile
    assert out.PatientIdentityRemoved == "YES"
    assert list(out.DeidentificationMethod) == [
        f"AMANA {profile.name}",
        f"profile version {profile.version}",
        f"key id {national.key.key_id}",
    ]
    codes = {i.CodeValue for i in out.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113103", "113104", "113105", "113107", "113108", "113109"}
    assert all(i.CodingSchemeDesignator == "DCM" for i in out.DeidentificationMethodCodeSequence)
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"


@pytest.mark.ocr
def test_national_profile_keeps_what_models_need(national: Deidentifier) -> None:
    """Rule (ma-national): sex, age, weight, modality, manufacturer, model, software and
    acquisition parameters survive; serial numbers, station names and the institution do
    not; the institution becomes its region."""
    who = Identity()
    outcome = national.deidentify(to_bytes(ct_instance(who)))
    out = parse(outcome.data)
    assert (out.PatientSex, out.PatientAge, str(out.PatientWeight)) == ("F", "049Y", "61")
    assert (out.Modality, out.Manufacturer, out.ManufacturerModelName) == (
        "CT", "FICTIVE MEDICAL", "ScanModel 64",
    )
    assert (out.SoftwareVersions, str(out.KVP), out.ConvolutionKernel) == ("VX12", "120", "B30f")
    assert "StationName" not in out
    assert out.get("DeviceSerialNumber") != who.serial
    assert out.InstitutionName == "Casablanca-Settat"
    assert outcome.facts.region == "Casablanca-Settat"
    assert outcome.facts.patient_birth_year_band == "1970-1979"
    assert outcome.facts.patient_age == "049Y"
    assert outcome.facts.study_date == out.StudyDate != "20240315"


@pytest.mark.ocr
def test_facts_and_paths_hold_no_phi(national: Deidentifier) -> None:
    """Rule: catalog facts and archive paths are built from de-identified values only."""
    who = Identity()
    ds = ct_instance(who)
    outcome = national.deidentify(to_bytes(ds))
    text = repr(outcome.facts) + str(archive_relpath(outcome.facts))
    for value in [*who.values(), ds.StudyInstanceUID, ds.SOPInstanceUID, ds.SeriesInstanceUID]:
        assert value not in text
    path = archive_relpath(outcome.facts)
    assert path.parts == (
        outcome.facts.study_uid, outcome.facts.series_uid, outcome.facts.sop_instance_uid + ".dcm"
    )


@pytest.mark.ocr
def test_ages_above_limit_are_generalized(national: Deidentifier) -> None:
    """Rule: ages are kept, except above 89 years which become 090Y (no birth band)."""
    ds = ct_instance(Identity(birth_date="19280101"))
    ds.PatientAge = "096Y"
    outcome = national.deidentify(to_bytes(ds))
    assert parse(outcome.data).PatientAge == "090Y"
    assert outcome.facts.patient_birth_year_band is None


def test_tag_only_work_never_decodes_pixels(national: Deidentifier) -> None:
    """Rule: without a pixel policy the Pixel Data value is written back byte for byte, even
    when it could not be decoded (here: not a valid JPEG stream at all)."""
    ds = ct_instance(Identity())
    data = to_bytes(ds)
    # corrupt the pixel bytes in place: decoding would fail, copying must not
    corrupt = data[: -len(ds.PixelData)] + b"\xff" * len(ds.PixelData)
    out = parse(national.deidentify(corrupt).data)
    assert out.PixelData == b"\xff" * len(ds.PixelData)


@pytest.fixture(scope="module")
def slow_writer(national: Deidentifier) -> Deidentifier:
    engine = Deidentifier(national.profile, national.key)
    engine.fast_write = False
    return engine


@pytest.mark.ocr
@pytest.mark.parametrize("name", PYDICOM_FILES)
def test_fast_writer_is_byte_identical_to_pydicom(
    national: Deidentifier, slow_writer: Deidentifier, name: str
) -> None:
    """Rule: copying untouched elements from the input (the tag-only fast path) gives
    exactly the bytes pydicom's writer gives for the same de-identified dataset."""
    data = (TEST_FILES / name).read_bytes()
    try:
        fast = national.deidentify(data).data
    except QuarantineError:
        return
    assert slow_writer.deidentify(data).data == fast


@pytest.mark.ocr
@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_fast_writer_identical_on_other_encodings(
    national: Deidentifier, slow_writer: Deidentifier, syntax: str
) -> None:
    """Rule: the same holds for implicit VR and big endian inputs."""
    data = to_bytes(ct_instance(Identity()), syntax)
    assert national.deidentify(data).data == slow_writer.deidentify(data).data


@pytest.mark.ocr
def test_output_does_not_depend_on_the_process(tmp_path: Path) -> None:
    """Rule: two worker processes (different hash seeds) give byte-identical outputs for the
    same input and key: re-sending an instance to any worker changes nothing."""
    import hashlib
    import os
    import subprocess
    import sys

    from tests.paths import REPO_ROOT

    ds = ct_instance(Identity(extra_names=["Zoubida"]))
    ds.ImageComments = "Testpatient Fatima, Zoubida, Bennani-Fictif, 0612345678"
    source = tmp_path / "in.dcm"
    source.write_bytes(to_bytes(ds))
    script = (
        "import hashlib, sys; from pathlib import Path\n"
        "from anonymizer.engine import Deidentifier, load_profile, key_from_bytes\n"
        "e = Deidentifier(load_profile('ma-national', Path('profiles')), key_from_bytes(b'h'*32))\n"
        "print(hashlib.sha256(e.deidentify(Path(sys.argv[1]).read_bytes()).data).hexdigest())\n"
    )
    digests = set()
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", script, str(source)], cwd=REPO_ROOT, capture_output=True,
            text=True, env={**os.environ, "PYTHONHASHSEED": seed}, check=True,
        )
        digests.add(result.stdout.strip())
    assert len(digests) == 1
    assert len(next(iter(digests))) == len(hashlib.sha256().hexdigest())


@pytest.mark.ocr
@pytest.mark.parametrize("name", PYDICOM_FILES)
def test_shortcuts_give_the_general_result(national: Deidentifier, name: str) -> None:
    """Rule: the shortcuts of the hot path (new values made from undecoded bytes, unchanged
    text left encoded) give exactly the bytes of the general path, which `explain` takes."""
    data = (TEST_FILES / name).read_bytes()
    _, explained = national.explain(data)
    try:
        direct = national.deidentify(data)
    except QuarantineError as exc:
        assert isinstance(explained, QuarantineError) and explained.reason == exc.reason
        return
    assert not isinstance(explained, QuarantineError)
    assert explained.data == direct.data


@pytest.mark.ocr
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                                    ExplicitVRBigEndian])
def test_shortcuts_identical_on_synthetic_instances(national: Deidentifier, syntax: str) -> None:
    """Rule: the same holds on an instance with identities everywhere, in every encoding."""
    ds = ct_instance(Identity())
    ds.AcquisitionDateTime = "20240317093000.5"
    ds.CalibrationDate = ["20240101", "20240201"]
    data = to_bytes(ds, syntax)
    _, explained = national.explain(data)
    assert not isinstance(explained, QuarantineError)
    assert explained.data == national.deidentify(data).data
