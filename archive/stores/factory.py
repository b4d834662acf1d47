"""The store an `AMANA_ARCHIVE_URL` names (amana/ reads the setting and passes it here)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from archive.stores import ArchiveStore, StoreCredentials
from archive.stores.dicomweb import SCHEMES, DicomWebStore
from archive.stores.file import FileStore


def file_root(url: str) -> Path:
    """The folder of a `file:///…` URL; refuses a host or a relative path."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise ValueError("a file archive URL is file:///absolute/folder")
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise ValueError("a file archive URL is file:///absolute/folder")
    return path


def open_store(url: str, credentials: StoreCredentials | None = None) -> ArchiveStore:
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return FileStore(file_root(url))
    if scheme in SCHEMES:
        return DicomWebStore(url, credentials)
    raise ValueError("the scheme must be file, dicomweb+http or dicomweb+https")
