"""`amana anonymize --preview DIR`: the steward sees what a profile does to the pixels."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.pixels.imaging import TEXTS, dataset, draw


@pytest.mark.ocr
def test_preview_writes_before_after_pngs_named_without_phi(tmp_path: Path) -> None:
    """Rules: --preview writes a before/after PNG for each examined image; names are made
    of positions and codes, never of input file names (which may carry patient names);
    a primary CT-like image that is not examined gets no preview."""
    image, _ = draw(False, 3, TEXTS)
    inputs = tmp_path / "in"
    inputs.mkdir()
    dataset([image]).save_as(inputs / "Testpatient_Fatima.dcm", enforce_file_format=True)
    env = dict(os.environ, AMANA_KEY_FILE=str(tmp_path / "key"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "amana.cli",
            "anonymize",
            str(inputs),
            "--out",
            str(tmp_path / "out"),
            "--preview",
            str(tmp_path / "preview"),
            "--create-key",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr
    pngs = sorted((tmp_path / "preview").glob("*.png"))
    assert len(pngs) == 1
    assert "Testpatient" not in pngs[0].name and "Fatima" not in pngs[0].name
    with Image.open(pngs[0]) as png:
        assert png.width >= 2 * image.shape[1]  # before and after, side by side
    assert (pngs[0].stat().st_mode & 0o077) == 0
