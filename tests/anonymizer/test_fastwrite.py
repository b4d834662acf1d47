"""The fast writer's own encoder of changed string elements against pydicom's writer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataelem import DataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element

from anonymizer.fastwrite import _STRING_VRS, _TEXT_VRS, encode_simple

# a tag of each VR (the encoder does not look the tag up; pydicom's writer neither)
_TAGS = {
    "AE": 0x00080054, "AS": 0x00101010, "CS": 0x00080060, "DA": 0x00080020,
    "UI": 0x00080018, "UR": 0x00081190, "LO": 0x00080070, "SH": 0x00080050,
    "ST": 0x00080081, "LT": 0x00184000, "UT": 0x00400280, "UC": 0x00080119,
}
_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
_VALUES = st.one_of(st.none(), _TEXT, st.lists(_TEXT, max_size=4))


def _pydicom(elem: DataElement, implicit: bool, little: bool, charset: str) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_implicit_VR, buffer.is_little_endian = implicit, little
    write_data_element(buffer, elem, charset)
    return buffer.getvalue()


@settings(max_examples=400, deadline=None)
@given(
    vr=st.sampled_from(sorted(_STRING_VRS | _TEXT_VRS)),
    value=_VALUES,
    implicit=st.booleans(),
    little=st.booleans(),
    charset=st.sampled_from(["iso8859", "ISO_IR 100", "ISO_IR 192", "ISO_IR 127"]),
)
def test_simple_elements_encode_as_pydicom_does(
    vr: str, value: object, implicit: bool, little: bool, charset: str
) -> None:
    """Rule: a changed string element the fast writer encodes itself has exactly the bytes
    pydicom's writer gives it, in every transfer syntax and plain character set."""
    elem = DataElement(_TAGS[vr], vr, value)
    encoded = encode_simple(elem, implicit, little, plain_text=True)
    if encoded is None:
        return  # left to pydicom
    assert encoded == _pydicom(elem, implicit, little, charset)


@pytest.mark.parametrize(
    ("vr", "value"),
    [("LO", "Café"), ("PN", "Doe^John"), ("US", 5), ("SQ", []), ("LO", b"raw")],
)
def test_anything_else_is_left_to_pydicom(vr: str, value: object) -> None:
    """Rule: non-ASCII text, other VRs and other value types are not encoded here."""
    elem = DataElement(0x00100010 if vr == "PN" else 0x00081110 if vr == "SQ" else 0x00280010,
                       vr, value)
    assert encode_simple(elem, False, True, plain_text=True) is None


def test_text_under_iso_2022_is_left_to_pydicom() -> None:
    """Rule: under ISO 2022 (escape sequences) text VRs take pydicom's encoder."""
    elem = DataElement(0x00080070, "LO", "Vendor")
    assert encode_simple(elem, False, True, plain_text=False) is None


def _nested(syntax: str, undefined: bool) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence

    inner = Dataset()
    inner.CodeValue = "CTCHEST"
    inner.CodingSchemeDesignator = "L"
    inner.CodeMeaning = "CT chest, made up"
    middle = Dataset()
    middle.RequestedProcedureID = "RP1"
    middle.ConceptNameCodeSequence = Sequence([inner])
    outer = Dataset()
    outer.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    outer.SOPInstanceUID = "2.25.1"
    outer.RequestAttributesSequence = Sequence([middle, Dataset()])
    outer.StudyDescription = "Thorax"
    outer.file_meta = FileMetaDataset()
    outer.file_meta.TransferSyntaxUID = syntax
    for elem in (outer["RequestAttributesSequence"], middle["ConceptNameCodeSequence"]):
        elem.is_undefined_length = undefined
    for item in (middle, inner):
        item.is_undefined_length_sequence_item = undefined
    buffer = DicomBytesIO()
    outer.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1",
                                    "1.2.840.10008.1.2.2"])
@pytest.mark.parametrize("undefined", [False, True])
def test_sequences_are_written_as_pydicom_writes_them(syntax: str, undefined: bool) -> None:
    """Rule: sequences (nested, of defined or undefined length, with a changed element in
    an item) come out of the fast writer with exactly the bytes of pydicom's writer."""
    from io import BytesIO

    from pydicom import dcmread

    from anonymizer.fastwrite import write_fast

    source = _nested(syntax, undefined)
    ds = dcmread(BytesIO(source))
    item = ds.RequestAttributesSequence[0]
    item.RequestedProcedureID = "CHANGED1"
    item.ConceptNameCodeSequence[0].CodeMeaning  # noqa: B018 - a read converts the element
    fast = write_fast(ds, source, syntax)
    expected = BytesIO()
    ds.save_as(expected, enforce_file_format=True)
    assert fast is not None
    assert fast[132:] == expected.getvalue()[132:]
