"""The spool: received instances, durable on disk before anyone is told they arrived.

Spool names are random, so a path never carries a patient's identity.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from anonymizer.errors import RejectError, RetryableError
from archive.fsio import durable_move, free_bytes, fsync_dir, fsync_file
from ingest.spool_names import received_name

# What the receiver writes into tmp/ while a dataset arrives (ingest/receive_files.py, and
# pynetdicom's own temporary files before it). Folder imports write *.part there instead.
RECEIVED_SUFFIX = ".dcm"


class Spool:
    def __init__(self, root: Path, min_free_bytes: int, max_file_bytes: int | None = None) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes
        self.incoming = root / "incoming"
        self.tmp = root / "tmp"
        self.min_free_bytes = min_free_bytes
        for d in (self.incoming, self.tmp):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path_of(self, spool_name: str) -> Path:
        return self.incoming / spool_name

    def has_space(self, reserve_bytes: int = 0) -> bool:
        """Whether `reserve_bytes` more still leave the free-space threshold free."""
        return free_bytes(self.root) - reserve_bytes >= self.min_free_bytes

    def check_space(self) -> None:
        # Refuse before the disk is full, so the sender keeps the study and retries.
        if not self.has_space():
            raise RetryableError("spool disk below its free-space threshold", code="spool_full")

    def purge_unacknowledged(self) -> int:
        """Remove what a receiver left in tmp/ when it stopped mid-transfer; the count.

        Only the receiver's own files: a dataset still in tmp/ was never answered Success
        (it is renamed into incoming/ first), so its sender still has it and sends it again.
        Call it before any receiver process of this spool accepts an association."""
        removed = 0
        for path in self.tmp.glob(f"*{RECEIVED_SUFFIX}"):
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed += 1
        return removed

    def adopt(self, received: Path) -> tuple[str, int]:
        """Move a fully received file (on the spool's filesystem) into the spool durably."""
        self.check_space()
        name = f"{uuid.uuid4().hex}.dcm"
        dest = self.incoming / name
        try:
            size = received.stat().st_size
            if self.max_file_bytes is not None and size > self.max_file_bytes:
                raise RejectError("instance exceeds the maximum accepted size", code="too_large")
            durable_move(received, dest, mode=0o600)
        except OSError as exc:
            raise RetryableError("could not persist to the spool", code="spool_write") from exc
        return name, size

    def adopt_received(
        self, received: Path, calling_ae: str | None, source_id: int | None
    ) -> tuple[str, int]:
        """Move a data set the receiver finished receiving into the spool under a name that
        carries its job row (ingest/spool_names.py); the file is flushed, and its rename is
        durable once `flush_incoming` has run.

        Renamed first, flushed second: on ext4 (and XFS) the one journal commit of the
        file's flush then carries the rename too, and the directory flush that follows finds
        little left to do (about half the time of flush-then-rename, which costs two
        commits). The price, a file seen in incoming/ before its data is durable, only
        shows after a power cut, on a file that was never answered; its name says its size,
        and the recovery scan removes it when it is short."""
        self.check_space()
        try:
            size = received.stat().st_size
            if self.max_file_bytes is not None and size > self.max_file_bytes:
                raise RejectError("instance exceeds the maximum accepted size", code="too_large")
            name = received_name(size, calling_ae, source_id)
            dest = self.incoming / name
            os.chmod(received, 0o600)
            os.replace(received, dest)
            try:
                fsync_file(dest)
            except OSError:
                dest.unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise RetryableError("could not persist to the spool", code="spool_write") from exc
        return name, size

    def flush_incoming(self) -> None:
        fsync_dir(self.incoming)

    def copy_in(self, source: Path) -> tuple[str, int]:
        """Copy a file from elsewhere (a backlog folder) into the spool durably."""
        self.check_space()
        tmp = self.tmp / f"{uuid.uuid4().hex}.part"
        try:
            shutil.copyfile(source, tmp)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise RetryableError("could not copy into the spool", code="spool_write") from exc
        return self.adopt(tmp)

    def discard(self, spool_name: str) -> None:
        self.path_of(spool_name).unlink(missing_ok=True)
