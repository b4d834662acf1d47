"""New archive folders survive a crash with the files in them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from archive import fsio


def _flushed_directories(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records which directories are fsynced (the real fsync still runs)."""
    flushed: list[Path] = []
    real_fsync_dir = fsio.fsync_dir

    def recording(directory: Path) -> None:
        flushed.append(Path(directory))
        real_fsync_dir(directory)

    monkeypatch.setattr(fsio, "fsync_dir", recording)
    return flushed


def test_every_new_directory_is_flushed_in_its_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule: when a write creates a study and a series folder, each new folder's entry is
    flushed in its parent, and the file's entry in the series folder; otherwise a power cut
    could lose a folder (and the instances in it) that the catalog says exists."""
    flushed = _flushed_directories(monkeypatch)
    archive = tmp_path / "archive"
    archive.mkdir()
    dest = archive / "study" / "series" / "instance.dcm"
    fsio.durable_write(dest, b"DICM")
    assert dest.read_bytes() == b"DICM"
    assert set(flushed) >= {archive, archive / "study", archive / "study" / "series"}


def test_a_move_into_a_new_directory_flushes_it_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule: a durable move into a folder it creates (quarantine, spool) flushes the new
    folder's entry in its parent and the file's entry in the new folder."""
    flushed = _flushed_directories(monkeypatch)
    src = tmp_path / "spool.dcm"
    src.write_bytes(b"DICM")
    dest = tmp_path / "quarantine" / "2026-12" / "held.dcm"
    fsio.durable_move(src, dest)
    assert dest.read_bytes() == b"DICM" and not src.exists()
    assert set(flushed) >= {tmp_path, tmp_path / "quarantine", dest.parent}


def test_existing_directories_cost_no_extra_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule: writing into folders that already exist flushes only the folder that got the
    new entry (a series of 500 slices pays no per-slice flush of its parents)."""
    (tmp_path / "study" / "series").mkdir(parents=True)
    flushed = _flushed_directories(monkeypatch)
    fsio.durable_write(tmp_path / "study" / "series" / "a.dcm", b"x")
    assert flushed == [tmp_path / "study" / "series"]
    assert os.listdir(tmp_path / "study" / "series") == ["a.dcm"]
