"""What an administrator reads about each association: who sent (calling AE title and
address: machines, never patients), and how many instances were received, refused or
failed. Also the Error Comment of a failed C-STORE: a code and a class name only, since the
sending PACS logs and shows it.
"""

from __future__ import annotations

import enum
import logging
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from anonymizer.errors import AmanaError

log = logging.getLogger("ingest.associations")

# Error Comment is an LO: at most 64 characters.
_ERROR_COMMENT_MAX = 64


class Outcome(enum.Enum):
    RECEIVED = "received"
    # Amana decided not to keep it (unparseable, too large, not a storage class).
    REFUSED = "refused"
    # Amana could not keep it (spool, catalog, anything unexpected): the PACS retries.
    FAILED = "failed"


@dataclass
class _Tally:
    received: int = 0
    refused: int = 0
    failed: int = 0


def peer(assoc: Any) -> str:
    """The "AE title (address)" of the association's requestor."""
    requestor = assoc.requestor
    # While the association is being negotiated only the request carries the title.
    primitive = getattr(requestor, "primitive", None)
    title = str(requestor.ae_title or getattr(primitive, "calling_ae_title", "") or "").strip()
    return f"{title or '-'} ({requestor.address})"


class AssociationTally:
    """Counts each association's C-STORE outcomes and logs one line when it ends."""

    def __init__(self) -> None:
        # Weak keys: an association that ends without an event leaves nothing behind.
        self._by_assoc: weakref.WeakKeyDictionary[Any, _Tally] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def count(self, assoc: Any, outcome: Outcome) -> None:
        with self._lock:
            tally = self._by_assoc.setdefault(assoc, _Tally())
            setattr(tally, outcome.value, getattr(tally, outcome.value) + 1)

    def ended(self, assoc: Any, how: str) -> None:
        with self._lock:
            tally = self._by_assoc.pop(assoc, None) or _Tally()
        never_requested = getattr(assoc.requestor, "primitive", None) is None
        if getattr(assoc, "is_rejected", False) or never_requested:
            # A rejection is logged once, as refused; a connection that never asked for an
            # association (a port probe) is no association. A stopping receiver aborts both.
            return
        log.info(
            "association %s %s: %d received, %d refused, %d failed",
            peer(assoc),
            how,
            tally.received,
            tally.refused,
            tally.failed,
        )


def on_rejected(event: Any) -> None:
    """Associations pynetdicom itself rejects, after the source check (another called AE
    title, too many associations), so a misconfigured PACS shows up in the log too."""
    assoc = event.assoc
    called = str(getattr(assoc.requestor.primitive, "called_ae_title", "") or "").strip()
    if called != str(assoc.acceptor.ae_title).strip():
        reason = f"called AE title {called or '-'} is not this receiver's"
    else:
        reason = "too many associations, or a negotiation item refused"
    log.warning("association %s refused: %s", peer(assoc), reason)


def error_comment(error: BaseException) -> str:
    """The Error Comment for a failed C-STORE: Amana's error code, and the class of what
    caused it; never the error's message, which may one day quote a value."""
    if isinstance(error, AmanaError):
        code = str(getattr(error, "code", None) or type(error).__name__)
        cause = error.__cause__
        text = f"{code}: {type(cause).__name__}" if cause is not None else code
    else:
        text = f"internal: {type(error).__name__}"
    return text[:_ERROR_COMMENT_MAX]


def failure_status(status: int, error: BaseException) -> Dataset:
    """A C-STORE response status with its Error Comment."""
    answer = Dataset()
    answer.Status = status
    answer.ErrorComment = error_comment(error)
    return answer
