"""What is examined for burned-in text, decided from the header alone (made-up headers)."""

from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

from anonymizer.errors import QuarantineError, QuarantineReason
from anonymizer.pixels import OcrSettings, PixelPolicy, bind_rules_dir, clean_pixels, rules_for
from anonymizer.pixels.plan import pixel_plan
from anonymizer.pixels.selection import examination_decision
from tests.paths import PIXEL_RULES_DIR

from .imaging import IDENTIFYING

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
PET = "1.2.840.10008.5.1.4.1.1.128"
NM = "1.2.840.10008.5.1.4.1.1.20"
SC = "1.2.840.10008.5.1.4.1.1.7"
US = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
DX_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
MG_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
XA = "1.2.840.10008.5.1.4.1.1.12.1"
VL_ENDOSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.1"
RT_IMAGE = "1.2.840.10008.5.1.4.1.1.481.1"
SEGMENTATION = "1.2.840.10008.5.1.4.1.1.66.4"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
# A SOP class no default list names: the decision then rests on the flag and image type.
OTHER_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.5.4"


class Case(NamedTuple):
    name: str
    modality: str
    sop_class: str
    image_type: str | None  # backslash-separated, None: absent
    flag: str | None  # Burned In Annotation; None: absent
    decision: str  # the code examination_decision gives (why, or why not)
    examined: bool


CASES = [
    # The image: a CT localizer with the name and birth date in a corner.
    Case("ct_localizer", "CT", CT, r"ORIGINAL\PRIMARY\LOCALIZER", None, "image_type", True),
    Case("ct_localizer_flag_no", "CT", CT, r"ORIGINAL\PRIMARY\LOCALIZER", "NO", "image_type",
         True),
    Case("ct_scout_4th_value", "CT", CT, r"ORIGINAL\PRIMARY\AXIAL\SCOUT", None, "image_type",
         True),
    Case("ct_screen_save", "CT", CT, r"DERIVED\SECONDARY\SCREEN SAVE", "NO", "image_type",
         True),
    # Scanned CT film: Modality CT, a Secondary Capture, no flag.
    Case("sc_scanned_film", "CT", SC, r"DERIVED\PRIMARY", None, "sop_class", True),
    Case("sc_scanned_film_no_type", "CT", SC, None, "NO", "sop_class", True),
    # A NO flag is not trusted on kinds that carry text.
    Case("us_flag_no", "US", US, r"ORIGINAL\PRIMARY", "NO", "modality", True),
    Case("us_cine_flag_no", "US", US_MULTIFRAME, None, "NO", "modality", True),
    Case("xa_flag_no", "XA", XA, r"ORIGINAL\PRIMARY\SINGLE PLANE", "NO", "modality", True),
    Case("endoscopy", "ES", VL_ENDOSCOPIC, None, None, "modality", True),
    Case("dx_flag_no", "DX", DX_PRESENTATION, r"ORIGINAL\PRIMARY", "NO", "modality", True),
    Case("mg_for_presentation", "MG", MG_PRESENTATION, r"ORIGINAL\PRIMARY", None, "modality",
         True),
    Case("rt_image", "RTIMAGE", RT_IMAGE, r"ORIGINAL\PRIMARY\PORTAL", "NO", "sop_class", True),
    Case("mr_other", "MR", MR, r"ORIGINAL\PRIMARY\OTHER", None, "image_type", True),
    # Primary cross-sectional slices: the only images an absent flag leaves alone.
    Case("ct_axial", "CT", CT, r"ORIGINAL\PRIMARY\AXIAL", None, "primary_slice", False),
    Case("ct_axial_flag_no", "CT", CT, r"ORIGINAL\PRIMARY\AXIAL", "NO", "flag_no", False),
    Case("ct_axial_flag_yes", "CT", CT, r"ORIGINAL\PRIMARY\AXIAL", "YES", "burned_in_flag",
         True),
    Case("mr_vendor_flavour", "MR", MR, r"ORIGINAL\PRIMARY\M\ND", None, "primary_slice", False),
    Case("pet_two_values", "PT", PET, r"ORIGINAL\PRIMARY", None, "primary_slice", False),
    Case("nm_recon_tomo", "NM", NM, r"ORIGINAL\PRIMARY\RECON TOMO", None, "primary_slice",
         False),
    # Not slices, no flag: examined.
    Case("nm_planar_whole_body", "NM", NM, r"ORIGINAL\PRIMARY\WHOLE BODY", None, "flag_absent",
         True),
    Case("nm_planar_empty_flag", "NM", NM, r"ORIGINAL\PRIMARY\STATIC", "", "flag_absent",
         True),
    # A missing Image Type is itself a sign (a shipped header-sign rule).
    Case("ct_no_image_type", "CT", CT, None, None,
         "sign:sign-stanford-blacklist-missing-imagetype", True),
    Case("unknown_kind_no_flag", "OPT", OTHER_CLASS, r"ORIGINAL\PRIMARY", None, "flag_absent",
         True),
    Case("unknown_kind_flag_no", "OPT", OTHER_CLASS, r"ORIGINAL\PRIMARY", "NO", "flag_no",
         False),
    # Labels and computed values are no picture, whatever their image type says.
    Case("segmentation", "SEG", SEGMENTATION, r"DERIVED\PRIMARY", None,
         "not_examined_sop_class", False),
    Case("segmentation_flag_yes", "SEG", SEGMENTATION, r"DERIVED\PRIMARY", "YES",
         "burned_in_flag", True),
]


def _policy(**fields: object) -> PixelPolicy:
    return bind_rules_dir(PixelPolicy.model_validate(fields), PIXEL_RULES_DIR)


def _header(case: Case, pixels: bool = True) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = UID(case.sop_class)
    ds.SOPClassUID = case.sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = case.modality
    ds.Manufacturer = "Example Medical"
    ds.PatientName = "Testpatient^Amina"
    if case.image_type is not None:
        ds.ImageType = case.image_type.split("\\")
    if case.flag is not None:
        ds.BurnedInAnnotation = case.flag
    if pixels:
        frame = np.random.default_rng(3).integers(0, 4095, (32, 32), dtype=np.uint16)
        ds.set_pixel_data(frame, "MONOCHROME2", 12, generate_instance_uid=False)
    return ds


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_examination_follows_what_the_image_is(case: Case) -> None:
    """Rule: every image that can carry text is examined (its SOP class, any Image Type
    value, its modality, or the flag YES); the flag NO exempts only images of no such
    kind, and an absent flag only primary CT/MR/PT/NM slices; `explain` says the same."""
    ds = _header(case)
    policy = _policy()
    examined, why_not = examination_decision(ds, policy, rules_for(policy))
    assert (examined if case.examined else why_not) == case.decision
    assert (examined is not None) == case.examined
    plan = pixel_plan(ds, policy)
    assert (plan.step != "not_examined") == case.examined


def test_an_image_without_pixel_data_is_out_of_scope() -> None:
    """Rule: an object without pixels (an encapsulated PDF) has nothing to examine."""
    ds = _header(Case("pdf", "DOC", ENCAPSULATED_PDF, None, None, "", False), pixels=False)
    policy = _policy()
    assert examination_decision(ds, policy, rules_for(policy)) == (None, "no_pixel_data")


def test_a_narrowed_image_type_list_does_not_exempt_a_localizer() -> None:
    """Rule: a profile that lists no image types still examines a CT localizer without
    the flag, since a projection view is no primary slice."""
    case = CASES[0]
    policy = _policy(image_types=[])
    assert examination_decision(_header(case), policy, rules_for(policy)) == ("flag_absent", "")


def test_ct_localizer_is_examined_by_the_pixel_step() -> None:
    """Rule: the issue's CT localizer (no flag) is decoded and examined: with no device
    rule and OCR disabled it is quarantined rather than passed with its text."""
    original = _header(CASES[0])
    output = copy.deepcopy(original)
    with pytest.raises(QuarantineError) as caught:
        clean_pixels(original, output, _policy(ocr=OcrSettings(enabled=False)), IDENTIFYING)
    assert caught.value.reason == QuarantineReason.PIXEL_POLICY


@pytest.mark.parametrize("flag", [None, "NO"])
def test_primary_axial_ct_pixel_data_is_never_decoded(flag: str | None) -> None:
    """Rule: a primary axial CT slice without the flag YES is not examined: Pixel Data
    bytes that no decoder could read pass through untouched."""
    original = _header(Case("ct", "CT", CT, r"ORIGINAL\PRIMARY\AXIAL", flag, "", False))
    original.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    original.PixelData = b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + b"not a jpeg stream"
    original["PixelData"].VR = "OB"
    output = copy.deepcopy(original)
    assert clean_pixels(original, output, _policy(), IDENTIFYING) == ("not_examined",)
    assert output.PixelData == original.PixelData
