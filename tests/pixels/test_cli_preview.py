"""`amana anonymize --preview DIR`: pictures named after the inputs, readable by their
owner only, never written through a symbolic link; the words stay out of the console."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path, PurePath

import numpy as np
import pytest
from PIL import Image

from amana.preview_files import (
    PreviewWriteError,
    input_names,
    prepare_folder,
    sanitize,
    write_private,
)
from tests.pixels.imaging import Text, dataset, draw

WORDS = ("Berrada", "Soukaina", "7731904")
TEXTS = [
    Text(10, 8, "Berrada Soukaina", 18, (255, 255, 255)),
    Text(10, 34, "ID 7731904", 16, (255, 255, 255)),
]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.ocr
def test_preview_pictures_are_named_after_the_inputs_and_private(tmp_path: Path) -> None:
    """Rules: one picture per examined frame, named after the input's path inside the
    folder named (folders kept, names sanitized) or after the file named alone, clashing
    names numbered; files 0600 in folders 0700; a symbolic link planted at a picture's
    name is left as it is and what it points to is untouched; the console shows counts,
    never a word OCR read; a primary CT is not previewed; every input is archived by the
    same run."""
    image, _ = draw(True, 3, TEXTS)
    ward = tmp_path / "in" / "ward A"
    ward.mkdir(parents=True)
    dataset([image]).save_as(ward / "scan 1.dcm", enforce_file_format=True)
    ct = dataset([np.zeros((16, 16), np.uint8)], modality="CT")
    ct.SOPClassUID = ct.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ct.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ct.save_as(tmp_path / "in" / "ct.dcm", enforce_file_format=True)
    alone = [tmp_path / "elsewhere" / "scan 1.dcm", tmp_path / "again" / "scan 1.dcm"]
    for file in alone:
        file.parent.mkdir()
        dataset([image]).save_as(file, enforce_file_format=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    preview = tmp_path / "preview"
    preview.mkdir(mode=0o700)
    (preview / "scan_1-frame-1.png").symlink_to(victim)
    env = dict(os.environ, AMANA_KEY_FILE=str(tmp_path / "key"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "amana.cli",
            "anonymize",
            str(tmp_path / "in"),
            *(str(file) for file in alone),
            "--out",
            str(tmp_path / "out"),
            "--preview",
            str(preview),
            "--create-key",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    # One engine run per input: the pictures' "after" is the file archived here.
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 4
    written = sorted(
        str(p.relative_to(preview)) for p in preview.rglob("*") if not p.is_dir()
    )
    assert written == [
        "scan_1-2-frame-1.png",
        "scan_1-frame-1.png",
        "ward_A/scan_1-frame-1.png",
    ]
    assert (preview / "scan_1-frame-1.png").is_symlink()
    assert victim.read_text() == "untouched"
    picture = preview / "ward_A" / "scan_1-frame-1.png"
    assert _mode(picture) == 0o600 and _mode(preview / "scan_1-2-frame-1.png") == 0o600
    assert _mode(preview / "ward_A") == 0o700
    with Image.open(picture) as png:
        assert png.width > 2 * image.shape[1]  # before, after and the list of boxes
    console = " ".join((result.stdout + result.stderr).split())  # rich wraps lines
    assert "symbolic link: not replaced" in console
    for word in WORDS:
        assert word not in console


def test_names_are_sanitized_and_clashes_numbered() -> None:
    """Rule: a preview name keeps the input's folders and stem, made of safe characters
    only (no separator, no leading dot, bounded length); names equal but for case or
    suffix get -2, -3."""
    names = input_names(
        [
            PurePath("a", "x.dcm"),
            PurePath("X.DCM"),
            PurePath("x"),
            PurePath("x.dcm"),
            PurePath("..", "..hidden name.dcm"),
            PurePath("d", "IM0001"),
        ]
    )
    assert [str(n) for n in names] == ["a/x", "X", "x-2", "x-3", "input/hidden_name", "d/IM0001"]
    assert sanitize("../../etc/passwd") == "_.._etc_passwd"
    assert len(sanitize("n" * 500)) == 80


def test_private_files_are_0600_and_links_are_never_written_through(tmp_path: Path) -> None:
    """Rule: a picture is a new file of mode 0600 (whatever the umask) renamed into place;
    an existing regular file is replaced, a symbolic link at the name or on the way to it
    is refused and its target left untouched."""
    folder = tmp_path / "preview"
    old_umask = os.umask(0)
    try:
        prepare_folder(folder)
        target = write_private(folder, PurePath("sub", "a.png"), b"one")
    finally:
        os.umask(old_umask)
    assert _mode(folder) == 0o700 and _mode(folder / "sub") == 0o700
    assert _mode(target) == 0o600 and target.read_bytes() == b"one"
    write_private(folder, PurePath("sub", "a.png"), b"two")
    assert target.read_bytes() == b"two" and _mode(target) == 0o600
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (folder / "link.png").symlink_to(victim)
    with pytest.raises(PreviewWriteError):
        write_private(folder, PurePath("link.png"), b"evil")
    (folder / "linked").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(PreviewWriteError):
        write_private(folder, PurePath("linked", "victim"), b"evil")
    assert victim.read_bytes() == b"keep"
    assert sorted(p.name for p in folder.rglob("*.tmp")) == []
