"""Datasets on their way into the spool, bounded while they arrive.

pynetdicom writes each incoming C-STORE data set, fragment by fragment, to a temporary file
it opens with `tempfile.NamedTemporaryFile` (`_config.STORE_RECV_CHUNKED_DATASET`). Checked
only once the instance was complete, a size or free-space limit let a 60 MB instance put
51 MB on the spool before the refusal. `ReceiveFiles.install` has pynetdicom open a
`ReceiveFile` instead: it counts each fragment before writing it, and at the size limit or
the spool's free-space threshold it deletes what it wrote and discards the rest of the
stream. The C-STORE is then answered with the refusal (0xA700, so the PACS keeps the
instance) and the association stays usable for the next instance.

This relies on pynetdicom internals (`dimse_messages.NamedTemporaryFile`, the file's `.name`,
`.write`, `.file.flush` and `.close`), hence the pin to pynetdicom 3.0 in pyproject.toml and
the receiver tests that send oversized instances.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from pynetdicom import dimse_messages

from anonymizer.errors import AmanaError, RejectError, RetryableError
from ingest.spool import RECEIVED_SUFFIX, Spool

log = logging.getLogger(__name__)

# statvfs once per this many bytes of one instance: cheap, and far below any sane threshold.
SPACE_CHECK_BYTES = 8 * 1024 * 1024
RECEIVED_PREFIX = "recv-"


class ReceiveFile:
    """One data set being received: stands in for pynetdicom's NamedTemporaryFile."""

    def __init__(self, files: ReceiveFiles) -> None:
        self._files = files
        fd, name = tempfile.mkstemp(
            prefix=RECEIVED_PREFIX, suffix=RECEIVED_SUFFIX, dir=files.spool.tmp
        )
        # As pynetdicom reports it back (`event.dataset_path`), to be found by it.
        self.name = str(Path(name))
        self._out: Any = os.fdopen(fd, "wb")
        # pynetdicom flushes `file` after each fragment.
        self.file = self
        self.written = 0
        self._next_space_check = 0
        self.refusal: AmanaError | None = None
        # The DUL thread of the association that writes it (pynetdicom's DULServiceProvider).
        self.writer = threading.current_thread()

    def write(self, data: bytes) -> int:
        if self._out is None:
            return len(data)
        refusal = self._files.refusal_for_growth(self.written, len(data), self._space_due())
        if refusal is not None:
            self.refusal = refusal
            self.discard()
            return len(data)
        self._out.write(data)
        self.written += len(data)
        return len(data)

    def _space_due(self) -> bool:
        if self.written < self._next_space_check:
            return False
        self._next_space_check = self.written + SPACE_CHECK_BYTES
        return True

    def flush(self) -> None:
        if self._out is not None:
            self._out.flush()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        self._files.forget(self)

    def discard(self) -> None:
        """Stop writing and delete what was written (idempotent)."""
        if self._out is not None:
            self._out.close()
            self._out = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.name)


class ReceiveFiles:
    """The receive files of one receiver process, and the limits they are held to."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._open: dict[str, ReceiveFile] = {}
        self._lock = threading.Lock()

    def install(self) -> None:
        """Have pynetdicom write received data sets through `open` (process-wide)."""
        if not hasattr(dimse_messages, "NamedTemporaryFile"):
            # A pynetdicom that no longer opens files this way would receive unbounded.
            raise RuntimeError("unsupported pynetdicom: cannot bound received instances")
        dimse_messages.NamedTemporaryFile = self.open  # type: ignore[assignment]

    def open(self, *_args: Any, **_kwargs: Any) -> ReceiveFile:
        received = ReceiveFile(self)
        with self._lock:
            self._open[received.name] = received
        return received

    def forget(self, received: ReceiveFile) -> None:
        with self._lock:
            self._open.pop(received.name, None)

    def refusal_for_growth(self, written: int, more: int, check_space: bool) -> AmanaError | None:
        limit = self.spool.max_file_bytes
        if limit is not None and written + more > limit:
            return RejectError("instance exceeds the maximum accepted size", code="too_large")
        if check_space and not self.spool.has_space(more):
            return RetryableError("spool disk below its free-space threshold", code="spool_full")
        return None

    def refusal(self, event: Any) -> AmanaError | None:
        """Why the data set of this C-STORE was not kept while it arrived, if it was not."""
        with self._lock:
            received = self._open.get(str(event.dataset_path))
        return received.refusal if received is not None else None

    def on_association_end(self, event: Any) -> None:
        """Delete the partial data sets of an association that ended (aborted, connection
        lost): never answered Success, so their senders still hold them."""
        writer = getattr(event.assoc, "dul", None)
        with self._lock:
            left = [f for f in self._open.values() if f.writer is writer]
            for received in left:
                self._open.pop(received.name, None)
        for received in left:
            received.discard()


_installed: ReceiveFiles | None = None


def installed_for(spool: Spool) -> ReceiveFiles:
    """The receive files of this process, installed once and shared by all its servers.

    pynetdicom's hook is process-wide: a second install (the TLS server beside the plain
    one) would take over the files the first server's handler looks up, and a refused data
    set would go unnoticed there.
    """
    global _installed
    if _installed is None or _installed.spool is not spool:
        _installed = ReceiveFiles(spool)
        _installed.install()
    return _installed
