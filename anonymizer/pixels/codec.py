"""Decode Pixel Data to frames, and write masked frames back with a consistent pixel module.

Masked pixels go back losslessly: into the received transfer syntax when it is lossless and
we can encode it, otherwise into the policy's lossless syntax. Lossy Image Compression
stays "01" once an image has been lossy compressed (PS3.3 C.7.6.1.1.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, pack_bits
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEG2000MCLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)
from pydicom.uid import JPEGLossless as JPEGLosslessP14

from anonymizer.errors import QuarantineError, QuarantineReason

from .policy import LosslessSyntax

NATIVE_KEPT = {ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian}
# Lossless syntaxes we can write back as received.
ENCODABLE_KEPT = {RLELossless, JPEG2000Lossless}

# Encapsulated syntaxes that never lose information; every other compressed one may.
LOSSLESS_ENCAPSULATED = {
    RLELossless,
    JPEG2000Lossless,
    JPEG2000MCLossless,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEGLosslessP14,
    JPEGLosslessSV1,
    JPEGLSLossless,
}

_TARGETS: dict[str, UID] = {
    "jpeg2000_lossless": JPEG2000Lossless,
    "rle_lossless": RLELossless,
    "explicit_vr_little_endian": ExplicitVRLittleEndian,
}


@dataclass
class Frames:
    """All frames as (frames, rows, columns[, samples]) plus what is needed to write back."""

    array: np.ndarray
    photometric: str  # of `array` (decoders return RGB for YBR colour data)
    bits_stored: int
    # PALETTE COLOR: index -> 8-bit RGB, so OCR sees the colours a viewer shows.
    palette: np.ndarray | None = None

    @property
    def count(self) -> int:
        return int(self.array.shape[0])

    @property
    def rows(self) -> int:
        return int(self.array.shape[1])

    @property
    def columns(self) -> int:
        return int(self.array.shape[2])

    @property
    def is_color(self) -> bool:
        return self.array.ndim == 4


def transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    uid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    return UID(uid) if uid else ImplicitVRLittleEndian


def decoded_bytes(ds: Dataset) -> int:
    """Memory the decoded frames will take, from the pixel module alone."""
    rows = int(ds.get("Rows", 0) or 0)
    columns = int(ds.get("Columns", 0) or 0)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    allocated = int(ds.get("BitsAllocated", 8) or 8)
    return rows * columns * frames * samples * max(1, allocated // 8)


def _palette(ds: Dataset, bits_stored: int) -> np.ndarray | None:
    try:
        indices = np.arange(2 ** min(bits_stored, 16), dtype=np.uint16)
        rgb = np.asarray(apply_color_lut(indices, ds), dtype=np.float64)
    except Exception:  # a broken LUT: OCR sees indices, masking still works
        return None
    peak = max(1.0, float(rgb.max()))
    return np.clip(rgb * (255.0 / peak), 0, 255).astype(np.uint8)


# Decodes started in this process: what sampling saves is counted here, where the cost is
# paid (the sampling benchmark and tests read it; nothing else depends on it).
_decodes = 0


def decodes_started() -> int:
    """How many times `decode` was called in this process so far."""
    return _decodes


def decode(ds: Dataset, max_bytes: int) -> Frames:
    """Every frame of `ds`, decoded; PIXEL_DECODE_FAILED when no decoder can read it."""
    global _decodes
    _decodes += 1
    if "PixelData" not in ds:
        raise QuarantineError(
            QuarantineReason.PIXEL_DECODE_FAILED, "image to examine has no usable Pixel Data"
        )
    if decoded_bytes(ds) > max_bytes:
        raise QuarantineError(
            QuarantineReason.TOO_LARGE,
            f"decoded pixels would take {decoded_bytes(ds) // 2**20} MiB, above the policy limit",
        )
    try:
        arr = ds.pixel_array
    except Exception as exc:  # any decoder failure is contained to this instance
        raise QuarantineError(
            QuarantineReason.PIXEL_DECODE_FAILED,
            f"cannot decode pixel data ({type(exc).__name__}, transfer syntax "
            f"{transfer_syntax(ds)})",
        ) from exc
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if frames == 1:
        arr = arr[np.newaxis, ...]
    if samples not in (1, 3) or arr.ndim != (4 if samples == 3 else 3):
        raise QuarantineError(
            QuarantineReason.PIXEL_DECODE_FAILED, "unexpected pixel layout after decoding"
        )
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if samples == 3:
        # pydicom converts YBR data to RGB when decoding.
        photometric = "RGB"
    bits_stored = int(ds.get("BitsStored", arr.dtype.itemsize * 8))
    palette = _palette(ds, bits_stored) if photometric == "PALETTE COLOR" else None
    # A decoded array may be read-only or a view into the cache; own a writable copy.
    return Frames(np.array(arr, copy=True), photometric, bits_stored, palette)


def encode(output: Dataset, frames: Frames, reencode_as: LosslessSyntax) -> str:
    """Write `frames` into `output`; returns the transfer syntax UID used.

    The received syntax is kept when it is lossless and encodable here, otherwise the
    policy's; if that encoder fails (openjpeg refuses very small images) the next lossless
    one is tried, down to native Explicit VR Little Endian, which always works.
    """
    received = transfer_syntax(output)
    was_lossy = (received.is_compressed and received not in LOSSLESS_ENCAPSULATED) or str(
        output.get("LossyImageCompression", "")
    ) == "01"
    if received == ExplicitVRBigEndian:
        target = ExplicitVRLittleEndian
    elif received in NATIVE_KEPT or received in ENCODABLE_KEPT:
        target = received
    else:
        target = _TARGETS[reencode_as]
    arr = frames.array if frames.count > 1 else frames.array[0]
    if arr.dtype.byteorder == ">":
        # Decoded from a big-endian data set: the values are right, their bytes are not the
        # order the new (little-endian) Pixel Data is written in.
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    if int(output.get("BitsAllocated", 8) or 8) == 1:
        return _encode_single_bit(output, frames, received)
    pixel_representation = int(output.get("PixelRepresentation", 0) or 0)
    if pixel_representation == 1 and arr.dtype.kind == "u":
        arr = arr.astype(arr.dtype.str.replace("u", "i"))
    had_frames = "NumberOfFrames" in output
    if received == ExplicitVRBigEndian:
        # Decode every element now (raw ones hold big-endian bytes) so the whole dataset
        # can be written little-endian, as the new pixels are.
        for element in output.iterall():
            _to_little_endian_words(element)
        output.set_original_encoding(False, True)
    try:
        # set_pixel_data refuses big-endian datasets; the new pixels are little-endian.
        output.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        # It writes a native pixel module (rows, columns, samples, planar configuration,
        # bits, representation, frames). Keep the SOP Instance UID: the header engine has
        # already remapped it.
        output.set_pixel_data(
            arr, frames.photometric, frames.bits_stored, generate_instance_uid=False
        )
    except Exception as exc:  # an odd pixel module must not crash the worker
        raise QuarantineError(
            QuarantineReason.PIXEL_DECODE_FAILED,
            f"cannot write the masked pixels back ({type(exc).__name__})",
        ) from exc
    if frames.count == 1 and had_frames:
        # set_pixel_data removes it for one frame; multi-frame IODs require it.
        output.NumberOfFrames = 1
    if target in NATIVE_KEPT:
        output.file_meta.TransferSyntaxUID = target
    else:
        for candidate in (target, RLELossless):
            try:
                output.compress(candidate, arr, generate_instance_uid=False)
                break
            except Exception:  # noqa: S112 - try the next lossless syntax
                continue
    if was_lossy:
        output.LossyImageCompression = "01"
    return str(output.file_meta.TransferSyntaxUID)


# Word sizes of the VRs whose values pydicom keeps as bytes in the file's byte order: a
# big-endian palette (segmented LUT data is OW) written little-endian must be swapped, or a
# viewer reads garbage segments.
_WORD_BYTES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _to_little_endian_words(element: DataElement) -> None:
    size = _WORD_BYTES.get(element.VR)
    value = element.value
    if size is None or element.tag == 0x7FE00010 or not isinstance(value, bytes):
        return
    if len(value) % size:
        raise QuarantineError(
            QuarantineReason.PIXEL_DECODE_FAILED,
            f"{element.VR} value of odd length in a big-endian data set",
        )
    element.value = np.frombuffer(value, dtype=f">u{size}").astype(f"<u{size}").tobytes()


def _encode_single_bit(output: Dataset, frames: Frames, received: UID) -> str:
    """Single-bit images (Bits Allocated 1, required by their IODs) stay single-bit."""
    packed = pack_bits(np.clip(frames.array, 0, 1).astype(np.uint8).ravel())
    if len(packed) % 2:
        packed += b"\x00"
    if received != ExplicitVRBigEndian and received in NATIVE_KEPT:
        output.file_meta.TransferSyntaxUID = received
    else:
        output.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    output.PixelData = packed
    output["PixelData"].VR = "OB"
    output["PixelData"].is_undefined_length = False
    return str(output.file_meta.TransferSyntaxUID)
