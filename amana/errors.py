"""The shell's name for the error vocabulary, which the core owns (`anonymizer.errors`)."""

from anonymizer.errors import (
    AmanaError,
    QuarantineError,
    QuarantineReason,
    RejectError,
    RetryableError,
)

__all__ = ["AmanaError", "QuarantineError", "QuarantineReason", "RejectError", "RetryableError"]
