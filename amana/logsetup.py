"""Logging for every entry point. Log lines carry ids and codes, never DICOM values."""

from __future__ import annotations

import logging
import warnings


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
    )
    # pynetdicom logs dataset contents at DEBUG; it must never reach our logs.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    # pydicom quotes offending element values in its warnings ("Invalid value for VR PN:
    # ..."): those values are PHI, so its messages are never emitted.
    logging.getLogger("pydicom").disabled = True
    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?")
