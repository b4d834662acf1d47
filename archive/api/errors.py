"""The one place where the system's decisions become HTTP codes (the DIMSE statuses have
theirs in `ingest.dimse_status`)."""

from __future__ import annotations

from anonymizer.errors import AmanaError, QuarantineError, RejectError, RetryableError

# Reject codes with an HTTP answer of their own; every other reject is 422.
_HTTP_REJECT_CODES = {
    "not_found": 404,
    "unauthenticated": 401,
    "forbidden": 403,
    "conflict": 409,
    "rate_limited": 429,
}


def http_status(error: AmanaError) -> int:
    if isinstance(error, RejectError):
        return _HTTP_REJECT_CODES.get(error.code, 422)
    if isinstance(error, RetryableError):
        return 503
    if isinstance(error, QuarantineError):
        return 422
    return 500
