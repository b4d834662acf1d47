"""The spine end to end: a real PACS peer (dcmtk storescu) sends to a running Amana."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from tests.support.harness import Amana, echoscu, storescu, wait_until
from tests.support.study_factory import identifying_strings, make_study


def _archive_files(home: Path) -> dict[str, str]:
    root = home / "archive"
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.dcm"))
    }


def _jobs(amana: Amana) -> dict[str, int]:
    health = httpx.get(f"http://127.0.0.1:{amana.api_port}/health", timeout=10).json()
    return dict(health["jobs"])


def _wait_jobs_settled(amana: Amana, expected: int) -> dict[str, int]:
    wait_until(lambda: _api_up(amana), timeout=60)
    wait_until(lambda: (j := _jobs(amana))["DONE"] + j["QUARANTINED"] >= expected, timeout=120)
    return _jobs(amana)


def _api_up(amana: Amana) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{amana.api_port}/health", timeout=2).is_success
    except httpx.HTTPError:
        return False


@pytest.fixture(params=["embedded", pytest.param("postgres+redis", marks=pytest.mark.services)])
def amana(request: pytest.FixtureRequest, tmp_path: Path) -> Amana:
    env: dict[str, str] = {}
    if request.param == "postgres+redis":
        env["AMANA_DATABASE_URL"] = request.getfixturevalue("pg_url")
        env["AMANA_BROKER_URL"] = request.getfixturevalue("redis_url")
    instance = Amana(tmp_path / "home", **env).start("run")
    request.addfinalizer(instance.stop)
    return instance


@pytest.mark.ocr
def test_study_arrives_deidentified_and_resending_changes_nothing(
    amana: Amana, tmp_path: Path
) -> None:
    """Rules: Success means archived or quarantined; a study of several series is catalogued
    once with the right counts; no archived byte or path holds the original name, ID or any
    original UID; sending the same study twice leaves catalog and archive unchanged."""
    study = make_study(tmp_path / "pacs")
    sent = storescu(amana.dicom_port, study.files)
    assert sent.returncode == 0, sent.stderr

    jobs = _wait_jobs_settled(amana, len(study.files))
    assert jobs["QUARANTINED"] == 0, amana.quarantine()
    studies = amana.studies()
    assert len(studies) == 1
    entry = studies[0]
    assert entry["series"] == study.series_count == 3
    assert entry["instances"] == len(study.files)
    assert entry["modalities"] == ["CT", "MR"]
    assert entry["study_uid"] != study.study_uid

    archive = _archive_files(amana.home)
    assert len(archive) == len(study.files)
    forbidden = identifying_strings(study)
    for relpath in archive:
        data = (amana.home / "archive" / relpath).read_bytes()
        for value in forbidden:
            assert value not in data, "an original identifier survived in an archived file"
            assert value.decode() not in relpath

    again = storescu(amana.dicom_port, study.files)
    assert again.returncode == 0, again.stderr
    _wait_jobs_settled(amana, 2 * len(study.files))
    assert amana.studies()[0] | {"status": None} == entry | {"status": None}
    assert _archive_files(amana.home) == archive


def test_unreadable_input_is_quarantined_and_service_stays_up(amana: Amana, tmp_path: Path) -> None:
    """Rules: a truncated file ends QUARANTINED with a reason and a PHI-free message; a
    payload that is not DICOM at all is refused at the door (0xC000, the sender keeps it);
    the receiver and worker keep serving afterwards. (Non-DICOM files that reach the spool
    by other ways are quarantined: tests/robustness.)"""
    from tests.raw_scu import dataset_body, send_raw_payloads

    study = make_study(tmp_path / "pacs", layout=[("CT_small.dcm", "ct")])
    body = dataset_body(study.files[0])
    statuses = send_raw_payloads(
        amana.dicom_port,
        [
            ("truncated", body[: len(body) // 2]),
            ("not_dicom", b"%PDF-1.4 this is not a dataset " * 40),
        ],
    )
    assert statuses == [0x0000, 0xC000]
    _wait_jobs_settled(amana, 1)
    held = amana.quarantine()
    assert len(held) == 1
    for item in held:
        assert item["reason"]
        assert item["message"]
        assert study.patient_name not in item["message"]
    assert echoscu(amana.dicom_port)
    sent = storescu(amana.dicom_port, study.files)
    assert sent.returncode == 0
    wait_until(lambda: len(amana.studies()) == 1, describe=amana.job_states)
