"""The archive as a folder: today's layout, `<archive>/<study>/<series>/<sop>.dcm`."""

from __future__ import annotations

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
        try:
            return (self.root / relpath).read_bytes()
        except FileNotFoundError:
            return None

    def withdraw(self, relpath: Path, dest: Path) -> bool:
        path = self.root / relpath
        if not path.exists():
            return False
        durable_move(path, dest, mode=0o600)
        return True

    def replace(self, relpath: Path, data: bytes) -> None:
        durable_write(self.root / relpath, data)
