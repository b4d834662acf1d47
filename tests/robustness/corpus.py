"""Hostile and broken inputs, made here (no external files): what a PACS should never send."""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    generate_uid,
)

PREAMBLE = b"\x00" * 128 + b"DICM"


def _meta(ts: str = ExplicitVRLittleEndian) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ts
    buf = io.BytesIO()
    pydicom.filewriter.write_file_meta_info(buf, meta, enforce_standard=True)  # type: ignore[arg-type]
    return PREAMBLE + buf.getvalue()


def _ct_bytes() -> bytes:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = "Malveillant^Test"
    ds.PatientID = "BAD-INPUT-001"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _explicit_element(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def _base_elements() -> bytes:
    return (
        _explicit_element(0x0008, 0x0016, b"UI", CTImageStorage.encode() + b"\x00")
        + _explicit_element(0x0008, 0x0018, b"UI", b"1.2.3.4.5\x00")
        + _explicit_element(0x0010, 0x0010, b"PN", b"Malveillant^Test")
        + _explicit_element(0x0010, 0x0020, b"LO", b"BAD-INPUT-001 ")
    )


def empty() -> bytes:
    return b""


def random_bytes() -> bytes:
    return os.urandom(4096)


def truncated() -> bytes:
    data = _ct_bytes()
    return data[: len(data) // 2]


def preamble_only() -> bytes:
    return PREAMBLE


def impossible_length() -> bytes:
    # A PN element claiming 4 GB of value.
    return (
        _meta()
        + struct.pack("<HH2sH", 0x0010, 0x0010, b"PN", 0xFFFF)
        + b"X" * 10
        + (struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFF0))
    )


def deflate_bomb() -> bytes:
    # ~200 MB of zeros in a few hundred kB: an OB element of that size inside a deflated set.
    body = _base_elements() + struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, 200_000_000)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunks = [compressor.compress(body)]
    zeros = b"\x00" * 1_000_000
    for _ in range(200):
        chunks.append(compressor.compress(zeros))
    chunks.append(compressor.flush())
    return _meta(DeflatedExplicitVRLittleEndian) + b"".join(chunks)


def deep_nesting(depth: int = 3000) -> bytes:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Malveillant^Test"
    ds.PatientID = "BAD-INPUT-001"
    # Built as bytes: pydicom cannot write 3,000 levels through recursion either.
    item_open = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    item_close = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
    seq_open = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
    seq_close = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    nested = b""
    for _ in range(depth):
        nested = seq_open + item_open + nested + item_close + seq_close
    return _meta() + _base_elements() + nested


def wrong_vrs() -> bytes:
    # A date that is text, a US with 3 bytes, a UI with letters, an unknown VR code.
    return (
        _meta()
        + _base_elements()
        + _explicit_element(0x0010, 0x0030, b"DA", b"yesterday!")
        + _explicit_element(0x0028, 0x0010, b"US", b"\x01\x02\x03\x00")
        + _explicit_element(0x0020, 0x000D, b"UI", b"not.a.uid.Malveillant")
        + _explicit_element(0x0010, 0x1000, b"ZZ", b"BAD-INPUT-001")
    )


def sequence_of_sequences_dataset() -> bytes:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = "Malveillant^Test"
    inner = Dataset()
    inner.PatientName = "Malveillant^Test"
    ds.ReferencedPatientSequence = Sequence([inner] * 50)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


BAD_INPUTS: dict[str, Callable[[], bytes]] = {
    "empty": empty,
    "random_bytes": random_bytes,
    "truncated": truncated,
    "preamble_only": preamble_only,
    "impossible_length": impossible_length,
    "deflate_bomb": deflate_bomb,
    "deep_nesting": deep_nesting,
    "wrong_vrs": wrong_vrs,
    "many_sequence_items": sequence_of_sequences_dataset,
}

CHARSET_FILES = [
    "chrArab.dcm",
    "chrFren.dcm",
    "chrFrenMulti.dcm",
    "chrGerm.dcm",
    "chrGreek.dcm",
    "chrH31.dcm",
    "chrH32.dcm",
    "chrHbrw.dcm",
    "chrI2.dcm",
    "chrJapMulti.dcm",
    "chrJapMultiExplicitIR6.dcm",
    "chrKoreanMulti.dcm",
    "chrRuss.dcm",
    "chrX1.dcm",
    "chrX2.dcm",
]
