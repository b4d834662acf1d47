"""Writing the de-identified instance: what-was-done attributes, file meta, Part 10 bytes."""

from __future__ import annotations

import struct
import zlib
from io import BytesIO

from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.tag import BaseTag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from anonymizer.fastwrite import write_fast
from anonymizer.profile_model import BASIC_PROFILE_CODE, OPTION_CODES, Option, Profile

IMPLEMENTATION_CLASS_UID = "2.25.206410617284311069734513541934813522261"
IMPLEMENTATION_VERSION = "AMANA_0.1"
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


def record_method(ds: Dataset, profile: Profile, key_id: str, dates_shifted: bool) -> None:
    """Patient Identity Removed, De-identification Method (+ codes) and the key id."""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [
        f"AMANA {profile.name}"[:64],
        f"profile version {profile.version}",
        f"key id {key_id}",
    ]
    codes = [BASIC_PROFILE_CODE]
    codes += [OPTION_CODES[o] for o in sorted(profile.options, key=list(Option).index)
              if o in OPTION_CODES]
    items = []
    for value, meaning in codes:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = items
    if Option.RETAIN_LONG_FULL_DATES in profile.options:
        ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
    elif dates_shifted:
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
    else:
        ds.LongitudinalTemporalInformationModified = "REMOVED"


def new_file_meta(ds: Dataset, transfer_syntax: str) -> FileMetaDataset:
    """A fresh file meta: nothing of the sender's (AE title, implementation) survives."""
    meta = FileMetaDataset()
    # Set in the dict, unvalidated: attribute assignment validates each value, which
    # cost more per instance than the rest of this function (the values are the
    # de-identified UIDs and Amana's own constants).
    for tag, vr, value in (
        (0x00020002, "UI", ds.SOPClassUID),
        (0x00020003, "UI", ds.SOPInstanceUID),
        (0x00020010, "UI", UID(transfer_syntax)),
        (0x00020012, "UI", UID(IMPLEMENTATION_CLASS_UID)),
        (0x00020013, "SH", IMPLEMENTATION_VERSION),
    ):
        meta._dict[BaseTag(tag)] = DataElement(tag, vr, value, validation_mode=config.IGNORE)
    return meta


def write_part10(ds: Dataset, source: bytes | None = None) -> bytes:
    """Part 10 bytes; reuses the untouched input bytes when `source` is given and allows."""
    if source is not None:
        fast = write_fast(ds, source, str(ds.file_meta.TransferSyntaxUID))
        if fast is not None:
            return fast
    ds.preamble = b"\x00" * 128  # a preamble can carry a whole other file (TIFF, PDF)
    buffer = BytesIO()
    try:
        dcmwrite(buffer, ds, enforce_file_format=True)
    except (TypeError, ValueError):
        # Files whose body does not match their declared encoding (implicit VR under an
        # explicit transfer syntax) keep raw elements without a VR: decode them all, retry.
        _convert_all(ds)
        buffer = BytesIO()
        dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _convert_all(ds: Dataset) -> None:
    for tag in list(ds.keys()):
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value:
                _convert_all(item)


def bytes_outside_pixels(data: bytes, ds: Dataset) -> list[bytes]:
    """The output bytes to scan: everything except the pixel data value (and inflated)."""
    if ds.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian:
        meta_length = struct.unpack("<I", data[140:144])[0]
        body_start = 144 + meta_length
        body = zlib.decompressobj(-zlib.MAX_WBITS).decompress(data[body_start:])
        return [data[:body_start], *_split_pixels(body, ds)]
    return _split_pixels(data, ds)


def _split_pixels(data: bytes, ds: Dataset) -> list[bytes]:
    for tag in PIXEL_TAGS:
        elem = ds.get_item(tag)
        if elem is None or not isinstance(elem.value, bytes) or len(elem.value) < 1024:
            continue
        value = elem.value
        # startswith at an offset compares in place; a slice would first copy the pixels.
        for tail in (0, 8, 1):  # nothing, sequence delimiter, odd padding
            start = len(data) - len(value) - tail
            if start > 0 and data.startswith(value, start):
                return [data[:start], data[start + len(value) :]]
        index = data.rfind(value[:256])
        if index > 0 and data.startswith(value, index):
            return [data[:index], data[index + len(value) :]]
    return [data]
