"""Durable file operations: a file is either fully there after a crash, or not at all."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_durable(directory: Path) -> None:
    """`mkdir -p` whose new entries survive a crash: each directory it creates is flushed
    in its parent. Without it, a new study or series folder could vanish at a power cut
    with the files the catalog says it holds. Costs nothing when `directory` exists."""
    if directory.is_dir():
        return
    missing: list[Path] = []
    current = directory
    while not current.is_dir():
        missing.append(current)
        current = current.parent
    for new in reversed(missing):
        # Made meanwhile by another worker: flushed here too, since this worker may rely on
        # it before that one has flushed it.
        with suppress(FileExistsError):
            new.mkdir()
        fsync_dir(new.parent)


def durable_move(
    src: Path, dest: Path, *, mode: int | None = None, flush_dir: bool = True
) -> None:
    """Flush `src`, rename it to `dest` and flush the directory entry. `flush_dir=False`:
    the caller flushes `dest.parent` itself (once for several moves) before it relies on
    the rename. Across filesystems (a spool on its own disk, the quarantine on another)
    the file is copied durably first and `src` removed only then."""
    fsync_file(src)
    if mode is not None:
        os.chmod(src, mode)
    make_dirs_durable(dest.parent)
    try:
        os.replace(src, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_across(src, dest)
        return
    if flush_dir:
        fsync_dir(dest.parent)


def _copy_across(src: Path, dest: Path) -> None:
    # The copy is durable at `dest` before `src` goes: a crash in between leaves both,
    # never neither (the job still names `src`, and a re-run moves it again).
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    shutil.copymode(src, tmp)
    fsync_file(tmp)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    os.unlink(src)
    fsync_dir(src.parent)


def durable_write(dest: Path, data: bytes, *, mode: int = 0o640) -> None:
    """Write `data` at `dest` through a temporary sibling so readers never see a partial file."""
    durable_write_many([(dest, data)], mode=mode)


def durable_write_many(files: Iterable[tuple[Path, bytes]], *, mode: int = 0o640) -> None:
    """`durable_write` for several files, each directory flushed once after all of its
    renames (a batch of one series' instances pays one directory fsync, not one each).
    When this returns, every file is durable at its path."""
    directories: dict[Path, None] = {}
    for dest, data in files:
        make_dirs_durable(dest.parent)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, dest)
        directories[dest.parent] = None
    for directory in directories:
        fsync_dir(directory)


def free_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize
