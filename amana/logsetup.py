"""Logging for every entry point. Log lines carry ids and codes, never DICOM values."""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
    )
    # pynetdicom logs dataset contents at DEBUG; it must never reach our logs.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
