"""Bring an exported file's headers to the level its manifest row was generalized to, so a
recipient who reads the DICOM headers learns no more than the k-anonymity check allowed.

Dates (every DA and DT, nested ones included) keep their year only (YYYY0101) when the study
month was generalized to a year, and are emptied when it was suppressed; Patient's Age goes
when the age band was widened; the model name is emptied when the model was suppressed, and
both manufacturer and model when the manufacturer was. The
archive's own copy is never touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from archive.datasets.privacy import SUPPRESSED

MANUFACTURER_KEYWORDS = ("Manufacturer", "ManufacturerModelName")


def _dates(ds: Dataset, keep_year: bool) -> None:
    def visit(dataset: Dataset, elem: DataElement) -> None:
        if elem.VR not in ("DA", "DT") or not elem.value:
            return
        values = elem.value if elem.VM > 1 else [elem.value]
        if keep_year:
            years = [str(v)[:4] + "0101" for v in values]
            elem.value = years if elem.VM > 1 else years[0]
        else:
            elem.value = ""

    ds.walk(visit)


def generalize_file(data: bytes, row: Mapping[str, str]) -> bytes:
    """`data` with its headers at the level of `row` (a manifest row after protection)."""
    ds = pydicom.dcmread(BytesIO(data))
    month = row["study_month"]
    if month == SUPPRESSED:
        _dates(ds, keep_year=False)
    elif len(month) == 4:
        _dates(ds, keep_year=True)
    if row["age_band"] == SUPPRESSED or _band_width(row["age_band"]) > 10:
        ds.pop("PatientAge", None)
    if row["manufacturer"] == SUPPRESSED:
        _empty(ds, MANUFACTURER_KEYWORDS)
    elif row.get("model") == SUPPRESSED:
        _empty(ds, ("ManufacturerModelName",))
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _empty(ds: Dataset, keywords: tuple[str, ...]) -> None:
    for keyword in keywords:
        if keyword in ds:
            ds.data_element(keyword).value = ""  # type: ignore[union-attr]


def _band_width(band: str) -> int:
    low, sep, high = band.partition("-")
    if not sep or not low.isdigit() or not high.isdigit():
        return 0
    return int(high) - int(low) + 1
