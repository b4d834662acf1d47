"""A cheap check at the door: the header must parse. Pixel data is never read here."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import DeflatedExplicitVRLittleEndian

from anonymizer.errors import RejectError

# Headers larger than this are read lazily: the check must stay cheap for any input.
_DEFER_BYTES = 4096


def check_header(path: Path, transfer_syntax: str) -> None:
    """Raise RejectError (answered 0xC000) when the data set's header cannot be parsed.

    Deflated data sets are left to the worker: inflating them here would expose the
    receiver to decompression bombs, and the worker runs under memory and time limits.
    """
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        return
    try:
        # Reading walks every element's tag, VR and length, so a corrupt structure is found
        # now. Values are not converted: a value that fails to decode is the worker's to
        # quarantine, and converting them all here cost more than the rest of the handler.
        ds = pydicom.dcmread(path, stop_before_pixels=True, defer_size=_DEFER_BYTES)
        if "SOPInstanceUID" not in ds or "StudyInstanceUID" not in ds:
            raise RejectError("data set lacks SOP or Study Instance UID", code="unparseable")
    except RejectError:
        raise
    except (
        InvalidDicomError,
        ValueError,
        EOFError,
        OSError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        OverflowError,
        RecursionError,
        MemoryError,
    ) as exc:
        raise RejectError(
            f"data set header cannot be parsed ({type(exc).__name__})", code="unparseable"
        ) from exc
