"""Exceptions named by what the system must do with the work in hand.

The core owns this vocabulary because it is the bottom layer: the core raises
QuarantineError, and the edges (ingest, archive, the shell) raise the others and map all of
them to protocol answers. Standard library only. Messages must never contain PHI: they are
logged, stored in the catalog and shown to auditors.
"""

from __future__ import annotations

from enum import StrEnum


class QuarantineReason(StrEnum):
    """Reason codes stored with every quarantined instance."""

    UNREADABLE = "unreadable"
    NOT_DICOM = "not_dicom"
    MISSING_ATTRIBUTE = "missing_attribute"
    UNSUPPORTED_TRANSFER_SYNTAX = "unsupported_transfer_syntax"
    SOP_CLASS_REFUSED = "sop_class_refused"
    RESIDUAL_PHI = "residual_phi"
    RESIDUAL_PIXEL_TEXT = "residual_pixel_text"
    # Text not on the allow-list still read after masking (identifying or not).
    PIXEL_TEXT_REMAINING = "pixel_text_remaining"
    PIXEL_DECODE_FAILED = "pixel_decode_failed"
    PIXEL_POLICY = "pixel_policy"
    OCR_UNAVAILABLE = "ocr_unavailable"
    TOO_LARGE = "too_large"
    WORKER_LOST = "worker_lost"
    PROCESSING_ERROR = "processing_error"


class AmanaError(Exception):
    """Base of every error the system maps to a protocol answer."""


class RejectError(AmanaError):
    """The request is refused now; the sender must not expect it to succeed on retry."""

    def __init__(self, message: str, *, code: str = "rejected") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RetryableError(AmanaError):
    """A transient failure (disk, database, broker): the same request may succeed later."""

    def __init__(self, message: str, *, code: str = "unavailable") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class QuarantineError(AmanaError):
    """The instance cannot be de-identified with certainty: keep it aside with a reason."""

    def __init__(self, reason: QuarantineReason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message
