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
        wait_until(
            lambda: sum(s["instances"] for s in amana.studies()) == len(study.files),
            describe=amana.job_states,
        )
        again = amana.cli("import", str(backlog)).stdout
        assert "queued 0 of" in again
        assert f"({len(study.files)} already imported earlier)" in again
    finally:
        amana.stop()


def test_import_with_source_gets_that_sources_profile_and_region(tmp_path: Path) -> None:
    """Rules: `amana import --source AE` attributes the files to that registered source, so
    its studies get the source's profile and region; an unregistered or disabled source is
    refused before anything is queued."""
    backlog = tmp_path / "backlog"
    make_study(backlog / "study1", layout=[("CT_small.dcm", "ct")])
    amana = Amana(tmp_path / "home").start("run")
    try:
        refused = amana.cli("import", "--source", "NOPACS", str(backlog), check=False)
        assert refused.returncode == 1 and "no such source" in refused.stderr
        amana.cli(
            "sources",
            "add",
            "OLDPACS",
            "10.4.4.4",
            "--profile",
            "dicom-basic",
            "--region",
            "Oriental",
        )
        amana.cli("sources", "disable", "OLDPACS")
        refused = amana.cli("import", "--source", "OLDPACS", str(backlog), check=False)
        assert refused.returncode == 1 and "disabled" in refused.stderr
        amana.cli("sources", "enable", "OLDPACS")
        assert "queued 1 of 1" in amana.cli("import", "--source", "OLDPACS", str(backlog)).stdout
        wait_until(lambda: len(amana.studies()) == 1, describe=amana.job_states)
        [study] = amana.studies()
        assert (study["profile"], study["region"]) == ("dicom-basic", "Oriental")
    finally:
        amana.stop()


def test_jobs_an_import_could_not_send_go_out_at_the_next_sweep(tmp_path: Path) -> None:
    """Rule: jobs whose message the importing process could not send (its broker
    unreachable while the running Amana's is fine) are marked never sent when the import
    ends, so the running sweeper sends them at its next pass, not after `stale_after`."""
    from tests.support.services import free_port

    study = make_study(
        tmp_path / "backlog", layout=[("CT_small.dcm", "ct"), ("MR_small.dcm", "mr")]
    )
    amana = Amana(tmp_path / "home", AMANA_STALE_AFTER_S="3600").start("run")
    try:
        cut_off = Amana(tmp_path / "home", AMANA_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
        out = cut_off.cli("import", str(tmp_path / "backlog")).stdout
        assert "queued 2 of 2" in out
        assert "2 jobs could not be sent now" in out
        wait_until(
            lambda: sum(s["instances"] for s in amana.studies()) == len(study.files),
            timeout=240,
            describe=amana.job_states,
        )
    finally:
        amana.stop()
