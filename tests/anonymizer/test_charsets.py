"""Names in the usual DICOM character sets (and ISO 2022 multi-byte) do not survive."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pydicom.data
import pytest

from anonymizer.engine import Deidentifier
from anonymizer.textnorm import name_components

pytestmark = pytest.mark.ocr

CHARSET_FILES = Path(pydicom.data.__file__).parent / "charset_files"
NAMES = [
    "chrArab.dcm", "chrFren.dcm", "chrFrenMulti.dcm", "chrGerm.dcm", "chrGreek.dcm",
    "chrH31.dcm", "chrH32.dcm", "chrHbrw.dcm", "chrI2.dcm", "chrJapMulti.dcm",
    "chrJapMultiExplicitIR6.dcm", "chrKoreanMulti.dcm", "chrRuss.dcm", "chrX1.dcm",
    "chrX2.dcm",
]


def text_values(ds: pydicom.Dataset) -> list[str]:
    values = []
    for elem in ds.iterall():
        if elem.VR in ("PN", "LO", "SH", "ST", "LT", "UT", "UC", "CS") and elem.value:
            values.append(str(elem.value))
    return values


@pytest.mark.parametrize("name", NAMES)
def test_names_in_any_character_set_are_removed(national: Deidentifier, name: str) -> None:
    """Rule: every component of the patient name, in the file's own character set (Latin-1,
    Arabic, Greek, Hebrew, Cyrillic, GB18030, UTF-8, ISO 2022 Japanese/Korean), is gone
    from every element of the output, also when it was written in free text."""
    ds = pydicom.dcmread(CHARSET_FILES / name, force=True)
    components = [c for c in name_components(str(ds.PatientName)) if len(c) >= 2]
    ds.StudyDescription = f"Examen {components[-1]}"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    outcome = national.deidentify(buffer.getvalue())
    out = pydicom.dcmread(io.BytesIO(outcome.data))
    joined = "\n".join(text_values(out))
    for component in components:
        assert component not in joined, component
    assert out.SpecificCharacterSet == ds.SpecificCharacterSet
