"""Writing a de-identified dataset without re-encoding what was not touched.

pydicom's writer costs tens of microseconds per element and copies Pixel Data twice. Most
elements of a de-identified instance are kept exactly as received (still raw, never
decoded), so their encoded bytes are already in the input: this writer copies those byte
ranges and lets pydicom encode only the elements the engine changed. The result is
byte-identical to `dcmwrite` (a test holds it to that); when the fast path does not apply
(deflate, a change of encoding or character set) it returns None and the caller uses
`dcmwrite`.
"""

from __future__ import annotations

import struct

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from anonymizer.peek import peek

# Explicit VR elements with a 4-byte length after 2 reserved bytes (PS3.5 7.1.2).
_LONG_HEADER_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"}
)
_UNDEFINED = 0xFFFFFFFF


def write_fast(
    ds: Dataset,
    source: bytes,
    transfer_syntax: str,
    extra: dict[int, bytes] | None = None,
) -> bytes | None:
    """`extra`: already encoded elements (tag -> bytes) that replace any in `ds`."""
    syntax = UID(transfer_syntax)
    if syntax == DeflatedExplicitVRLittleEndian:
        return None
    if syntax.is_transfer_syntax:
        encoding: tuple[bool | None, bool | None] = (syntax.is_implicit_VR,
                                                     syntax.is_little_endian)
        if ds.original_encoding != encoding:
            return None
    else:
        # A syntax newer than pydicom (e.g. Deflated Image Frame Compression): the body
        # keeps the encoding it was received in, which is what the syntax says.
        encoding = ds.original_encoding
        if None in encoding:
            return None
    implicit, little = bool(encoding[0]), bool(encoding[1])
    pixels = ds._dict.get(0x7FE00010)  # type: ignore[call-overload]
    if pixels is not None and not isinstance(pixels, RawDataElement):
        # as dcmwrite does (PS3.5 A.4): encapsulated pixel data has undefined length
        pixels.is_undefined_length = syntax.is_transfer_syntax and syntax.is_compressed
    meta = encode_file_meta(ds.file_meta)
    if meta is None:
        head = DicomBytesIO()
        head.is_implicit_VR, head.is_little_endian = implicit, little
        write_file_meta_info(head, ds.file_meta, enforce_standard=True)
        meta = head.getvalue()
    chunks: list[bytes | memoryview] = [b"\x00" * 128 + b"DICM" + meta]
    buffer = DicomBytesIO()
    buffer.is_implicit_VR, buffer.is_little_endian = implicit, little
    charset = peek(ds, 0x00080005) if 0x00080005 in ds._dict else "iso8859"
    # Text is encoded here only where every character set writes ASCII as ASCII: ISO 2022
    # (escapes) and code extensions take pydicom's encoder.
    plain_text = isinstance(charset, str) and "2022" not in charset
    view = memoryview(source)
    tag_format = "<HH" if little else ">HH"
    extra = extra or {}
    # plain ints: sorting BaseTags calls their Python-level __lt__ some 500 times
    for tag in sorted({int(t) for t in ds._dict} | set(extra)):
        if (tag & 0xFFFF) == 0 and (tag >> 16) > 6:
            continue  # retired group lengths are never written (PS3.5 7.2)
        if tag in extra:
            if buffer.tell():
                chunks.append(buffer.getvalue())
                buffer = DicomBytesIO()
                buffer.is_implicit_VR, buffer.is_little_endian = implicit, little
            chunks.append(extra[tag])
            continue
        elem = ds._dict[tag]  # type: ignore[index]
        span = _raw_span(elem, source, implicit, tag_format)
        if span is None:
            encoded = encode_simple(elem, implicit, little, plain_text)
            if encoded is None and isinstance(elem, DataElement) and elem.VR == "SQ":
                encoded = _encode_sequence(elem, implicit, little, plain_text)
            if encoded is not None:
                buffer.write(encoded)
                continue
            item = ds.get_item(Tag(tag))
            if isinstance(item, RawDataElement) and item.VR is None and not implicit:
                return None  # a body that was implicit VR under an explicit syntax: dcmwrite
            write_data_element(buffer, item, charset)
            continue
        if buffer.tell():
            chunks.append(buffer.getvalue())
            buffer = DicomBytesIO()
            buffer.is_implicit_VR, buffer.is_little_endian = implicit, little
        chunks.append(view[span[0] : span[1]])
    if buffer.tell():
        chunks.append(buffer.getvalue())
    return b"".join(chunks)


_META_KEYWORDS = (
    (0x00020002, "MediaStorageSOPClassUID"),
    (0x00020003, "MediaStorageSOPInstanceUID"),
    (0x00020010, "TransferSyntaxUID"),
    (0x00020012, "ImplementationClassUID"),
)


def encode_file_meta(meta: Dataset) -> bytes | None:
    """The File Meta Information Amana writes (always the same six elements), encoded as
    `write_file_meta_info` does; None for any other content."""
    expected = {0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013}
    if set(meta._dict) != expected:
        return None
    body = [b"\x02\x00\x01\x00OB\x00\x00\x02\x00\x00\x00\x00\x01"]
    for tag, keyword in _META_KEYWORDS:
        value = str(meta.get(keyword, "")).encode("ascii")
        if len(value) % 2:
            value += b"\x00"
        body.append(struct.pack("<HH2sH", 0x0002, tag & 0xFFFF, b"UI", len(value)) + value)
    version = str(meta.ImplementationVersionName).encode("ascii")
    if len(version) % 2:
        version += b" "
    body.append(struct.pack("<HH2sH", 0x0002, 0x0013, b"SH", len(version)) + version)
    content = b"".join(body)
    return struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(content)) + content


def _raw_span(
    elem: object, source: bytes, implicit: bool, tag_format: str
) -> tuple[int, int] | None:
    """Where an untouched element's encoded bytes are in the input, if they can be reused."""
    if not isinstance(elem, RawDataElement) or elem.value_tell is None:
        return None
    length = elem.length
    if length == _UNDEFINED or length % 2 or elem.value is None or len(elem.value) != length:
        return None
    if implicit:
        header = 8
    elif elem.VR is None:
        return None
    else:
        header = 12 if elem.VR in _LONG_HEADER_VRS else 8
    start = elem.value_tell - header
    if start < 0:
        return None
    expected = struct.pack(tag_format, elem.tag >> 16, elem.tag & 0xFFFF)
    if source[start : start + 4] != expected:
        return None  # not where we think it is: let pydicom encode it
    return start, elem.value_tell + length


# pydicom's write_string (padded with a space; UI with a NUL), whatever the character set
_STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "UI", "UR"})
# pydicom's write_text: the value encoded in the character set, padded with a space
_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC"})


def encode_simple(elem: object, implicit: bool, little: bool, plain_text: bool) -> bytes | None:
    """An element of a string VR whose value is ASCII text, encoded exactly as pydicom's
    `write_data_element` encodes it (a test compares both on generated values); None for
    anything else (other VRs, other value types, non-ASCII text, long values)."""
    if not isinstance(elem, DataElement) or elem.is_undefined_length:
        return None
    vr = elem.VR
    if vr in _TEXT_VRS:
        if not plain_text:
            return None
    elif vr not in _STRING_VRS:
        return None
    value = elem.value
    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value
    elif isinstance(value, MultiValue | list | tuple) and all(isinstance(v, str) for v in value):
        text = "\\".join(value)
    else:
        return None
    if not text.isascii():
        return None
    if len(text) % 2:
        text += "\x00" if vr == "UI" else " "
    if len(text) > 0xFFFF:
        return None  # pydicom writes such a value as UN
    payload = text.encode("ascii")
    tag = elem.tag
    order = "<" if little else ">"
    if implicit:
        header = struct.pack(order + "HHI", tag >> 16, tag & 0xFFFF, len(payload))
    elif vr in _LONG_HEADER_VRS:
        header = struct.pack(order + "HH2sHI", tag >> 16, tag & 0xFFFF, vr.encode(), 0,
                             len(payload))
    else:
        header = struct.pack(order + "HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(payload))
    return header + payload


def _encode_raw(elem: object, implicit: bool, little: bool) -> bytes | None:
    """A still-encoded element written from the value bytes it holds, as pydicom's
    `write_data_element` writes a raw element; None where that writer would do more."""
    if not isinstance(elem, RawDataElement) or elem.length == _UNDEFINED:
        return None
    value = elem.value
    if not isinstance(value, bytes):
        return None
    tag, vr, length = elem.tag, elem.VR, len(value)
    order = "<" if little else ">"
    if implicit:
        return struct.pack(order + "HHI", tag >> 16, tag & 0xFFFF, length) + value
    if vr is None or len(vr) != 2:
        return None
    if vr in _LONG_HEADER_VRS:
        return struct.pack(order + "HH2sHI", tag >> 16, tag & 0xFFFF, vr.encode(), 0,
                           length) + value
    if length > 0xFFFF:
        return None  # pydicom writes such a value as UN
    return struct.pack(order + "HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), length) + value


def _encode_sequence(
    elem: DataElement, implicit: bool, little: bool, plain_text: bool
) -> bytes | None:
    """A sequence whose items were read in this encoding, written as pydicom's
    `write_sequence` writes it: untouched item elements from the bytes they hold, changed
    ASCII strings encoded here. None when any item needs more (an item of its own
    character set or encoding, an element neither copied nor simple): pydicom writes it."""
    order = "<" if little else ">"
    parts: list[bytes] = []
    for item in elem.value:
        if not isinstance(item, Dataset) or item.original_encoding != (implicit, little):
            return None
        if 0x00080005 in item._dict:
            return None  # its own character set: pydicom's rules for it
        body: list[bytes] = []
        for tag in sorted(int(t) for t in item._dict):
            if (tag & 0xFFFF) == 0 and (tag >> 16) > 6:
                continue  # retired group lengths are never written (PS3.5 7.2)
            child = item._dict[tag]  # type: ignore[index]
            # Not copied from `source` by offset: items parsed when their sequence was
            # first read hold offsets into the sequence's value, not into the file.
            encoded = _encode_raw(child, implicit, little)
            if encoded is None:
                encoded = encode_simple(child, implicit, little, plain_text)
            if encoded is None and isinstance(child, DataElement) and child.VR == "SQ":
                encoded = _encode_sequence(child, implicit, little, plain_text)
            if encoded is None:
                return None
            body.append(encoded)
        content = b"".join(body)
        if getattr(item, "is_undefined_length_sequence_item", False):
            parts += [struct.pack(order + "HHI", 0xFFFE, 0xE000, _UNDEFINED), content,
                      struct.pack(order + "HHI", 0xFFFE, 0xE00D, 0)]
        else:
            parts += [struct.pack(order + "HHI", 0xFFFE, 0xE000, len(content)), content]
    value = b"".join(parts)
    tag = elem.tag
    undefined = elem.is_undefined_length
    length = _UNDEFINED if undefined else len(value)
    if implicit:
        header = struct.pack(order + "HHI", tag >> 16, tag & 0xFFFF, length)
    else:
        header = struct.pack(order + "HH2sHI", tag >> 16, tag & 0xFFFF, b"SQ", 0, length)
    tail = struct.pack(order + "HHI", 0xFFFE, 0xE0DD, 0) if undefined else b""
    return header + value + tail


def encode_elements(ds: Dataset, implicit: bool, little: bool) -> dict[int, bytes]:
    """Each element of a small dataset encoded on its own (for `extra`)."""
    encoded: dict[int, bytes] = {}
    charset = peek(ds, 0x00080005) if 0x00080005 in ds._dict else "iso8859"
    for tag in sorted(ds._dict):
        buffer = DicomBytesIO()
        buffer.is_implicit_VR, buffer.is_little_endian = implicit, little
        write_data_element(buffer, ds[tag], charset)
        encoded[int(tag)] = buffer.getvalue()
    return encoded
