"""The archive as a folder: today's layout, `<archive>/<study>/<series>/<sop>.dcm`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from archive.fsio import durable_move, durable_write, durable_write_many


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def put_many(self, items: Sequence[tuple[Path, bytes]]) -> None:
        # Durable (fsync of files and their folders) when this returns: that is the
        # confirmation the catalog commit waits for.
        durable_write_many((self.root / relpath, data) for relpath, data in items)

    def read(self, relpath: Path) -> bytes | None:
        # Only a file under the archive folder, never through a link: a path from the
        # catalog is built from UIDs, and one that is not must not reach other files.
        root = self.root.resolve()
        path = (root / relpath).resolve()
        if not path.is_relative_to(root):
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return None
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    def withdraw(self, relpath: Path, dest: Path) -> bool:
        path = self.root / relpath
        if not path.exists():
            return False
        durable_move(path, dest, mode=0o600)
        return True

    def replace(self, relpath: Path, data: bytes) -> None:
        durable_write(self.root / relpath, data)
