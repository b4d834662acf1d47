"""`amana import`: a backlog folder through the same spool, jobs and workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.harness import Amana, wait_until
from tests.support.study_factory import make_study

pytestmark = pytest.mark.ocr


def test_backlog_folder_is_archived_and_import_resumes(tmp_path: Path) -> None:
    """Rules: every DICOM file of a backlog folder ends in the archive through the queue;
    non-DICOM files are listed with a reason; importing the folder again queues nothing."""
    backlog = tmp_path / "backlog"
    study = make_study(backlog / "study1")
    (backlog / "notes.txt").write_text("scanned requisition, not DICOM")
    amana = Amana(tmp_path / "home").start("run")
    try:
        out = amana.cli("import", str(backlog)).stdout
        assert f"queued {len(study.files)} of {len(study.files) + 1} files" in out
        assert "notes.txt" in out and "not a DICOM Part 10 file" in out
        wait_until(lambda: sum(s["instances"] for s in amana.studies()) == len(study.files))
        again = amana.cli("import", str(backlog)).stdout
        assert "queued 0 of" in again
        assert f"({len(study.files)} already imported earlier)" in again
    finally:
        amana.stop()
