"""The one place where the system's decisions become DIMSE statuses (the HTTP codes have
theirs in `archive.api.errors`)."""

from __future__ import annotations

from anonymizer.errors import QuarantineError, RejectError

DIMSE_SUCCESS = 0x0000
# Out of resources: the sender keeps the instance and tries again later.
DIMSE_OUT_OF_RESOURCES = 0xA700
DIMSE_SOP_CLASS_NOT_SUPPORTED = 0x0122
# "Cannot understand": the dataset itself is refused.
DIMSE_CANNOT_UNDERSTAND = 0xC000

_REJECT_CODES = {
    "sop_class_refused": DIMSE_SOP_CLASS_NOT_SUPPORTED,
    "too_large": DIMSE_OUT_OF_RESOURCES,
    "unparseable": DIMSE_CANNOT_UNDERSTAND,
}


def dimse_status(error: BaseException) -> int:
    if isinstance(error, RejectError):
        return _REJECT_CODES.get(error.code, DIMSE_CANNOT_UNDERSTAND)
    if isinstance(error, QuarantineError):
        # The receiver never quarantines by itself: a failure here means it could not keep it.
        return DIMSE_OUT_OF_RESOURCES
    # RetryableError and anything unexpected: never Success for data not stored.
    return DIMSE_OUT_OF_RESOURCES
