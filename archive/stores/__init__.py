"""Where de-identified instances are kept: a folder (`file:///…`) or a DICOMweb archive
(`dicomweb+http(s)://…`), behind one interface.

An instance is named by its archive path, `<study>/<series>/<sop>.dcm` built from new UIDs
only (anonymizer/paths.py); the catalog records that name whatever the store. A store
confirms before it returns: the worker commits the catalog row and the job's DONE only
after `put_many` came back, so an instance the catalog calls archived is in the store.
Writing the same instance again must leave one copy (the file store renames identical bytes
over the old ones; a DICOMweb archive keeps one instance per SOP Instance UID).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from anonymizer.errors import RetryableError

__all__ = ["ArchiveStore", "ArchiveUnavailable", "StoreCredentials"]


class ArchiveUnavailable(RetryableError):
    """The store did not confirm (down, refusing, timing out): the jobs go back to wait."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="archive_unavailable")


class ArchiveStore(Protocol):
    def put_many(self, items: Sequence[tuple[Path, bytes]]) -> None:
        """Store every (archive path, bytes); when this returns, each is confirmed by the
        store. Raises ArchiveUnavailable when any is not."""

    def read(self, relpath: Path) -> bytes | None:
        """The stored bytes, or None when the store has no such instance."""

    def withdraw(self, relpath: Path, dest: Path) -> bool:
        """Take an instance out of the archive into `dest` (mode 0600); False when the
        store had no such instance."""

    def replace(self, relpath: Path, data: bytes) -> None:
        """Store `data` in place of the instance already stored under `relpath`."""


class StoreCredentials:
    """Bearer token, or user and password (basic auth), for a DICOMweb archive. Holds the
    secrets without ever printing them."""

    def __init__(
        self,
        *,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.token = token
        self.user = user
        self.password = password
        self.ca_file = ca_file

    def __repr__(self) -> str:
        kind = "token" if self.token else "basic" if self.user else "none"
        return f"StoreCredentials({kind})"
