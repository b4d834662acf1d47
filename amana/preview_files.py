"""Writing a steward's preview pictures: names after the inputs, files only they can read.

The pictures show the patient's burned-in text (anonymizer/pixels/preview.py), so every
file is created with mode 0600 in folders of mode 0700, by `os.open` with O_EXCL and
O_NOFOLLOW on a new name, then renamed into place: a symbolic link planted where a
picture goes is never written through nor replaced.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path, PurePath

FILE_MODE = 0o600
FOLDER_MODE = 0o700
_UNSAFE = re.compile(r"[^\w.+-]+", re.UNICODE)
_MAX_PART = 80


class PreviewWriteError(Exception):
    """A picture could not be written; the message names the picture, never its words."""


def sanitize(part: str) -> str:
    """One path component made safe: letters, digits and `._+-` only, no leading dot,
    at most 80 characters."""
    cleaned = _UNSAFE.sub("_", part).lstrip(".")[:_MAX_PART]
    return cleaned or "input"


def input_names(relative: Iterable[PurePath]) -> list[PurePath]:
    """Preview names (no suffix) for inputs given by their names relative to what was
    named on the command line: folders kept, each part sanitized, the suffix dropped;
    names that clash (case ignored) get -2, -3, ..."""
    taken: set[str] = set()
    names: list[PurePath] = []
    for path in relative:
        folders = [sanitize(p) for p in path.parent.parts if p not in ("", ".", "/")]
        stem = sanitize(path.stem if path.suffix else path.name)
        candidate = PurePath(*folders, stem)
        number = 1
        while str(candidate).casefold() in taken:
            number += 1
            candidate = PurePath(*folders, f"{stem}-{number}")
        taken.add(str(candidate).casefold())
        names.append(candidate)
    return names


def prepare_folder(folder: Path) -> None:
    """Create the preview folder readable by its owner only. An existing folder is used
    as it is, unless it is not a folder."""
    try:
        folder.mkdir(parents=True, mode=FOLDER_MODE)
        folder.chmod(FOLDER_MODE)  # mkdir's mode is filtered by the umask
    except FileExistsError:
        if not folder.is_dir():
            raise PreviewWriteError(f"{folder} exists and is not a folder") from None


def write_private(folder: Path, name: PurePath, data: bytes) -> Path:
    """Write `data` to folder/name with mode 0600, creating subfolders with mode 0700.

    The bytes go to a new file (O_CREAT | O_EXCL | O_NOFOLLOW), renamed over `name`
    unless `name` is a symbolic link or not a regular file (then nothing is written).
    """
    target = folder / name
    parent = target.parent
    level = folder
    for part in name.parent.parts:
        level = level / part
        if level.is_symlink():
            raise PreviewWriteError(f"{level} is a symbolic link: not written into")
        if not level.exists():
            level.mkdir(mode=FOLDER_MODE)
            level.chmod(FOLDER_MODE)
    try:
        existing = os.lstat(target)
    except FileNotFoundError:
        existing = None
    if existing is not None and stat.S_ISLNK(existing.st_mode):
        raise PreviewWriteError(f"{target} is a symbolic link: not replaced")
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise PreviewWriteError(f"{target} exists and is not a regular file: not replaced")
    temporary = parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(temporary, flags, FILE_MODE)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target
