"""`amana run` archiving into a real Orthanc over DICOMweb, the way an operator sets it up
(AMANA_ARCHIVE_URL and credentials), with the archive stopped and started mid-way."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from archive.stores import StoreCredentials
from archive.stores.dicomweb import DicomWebStore
from tests.support.harness import Amana, storescu, wait_until
from tests.support.orthanc import PASSWORD, USER, Orthanc
from tests.support.study_factory import identifying_strings, make_study


def _jobs(amana: Amana) -> dict[str, int]:
    try:
        reply = httpx.get(f"http://127.0.0.1:{amana.api_port}/health", timeout=5)
    except httpx.HTTPError:
        return {}
    return dict(reply.json()["jobs"]) if reply.is_success else {}


def _done(amana: Amana, expected: int) -> bool:
    return _jobs(amana).get("DONE", 0) >= expected


@pytest.fixture(params=["embedded", pytest.param("postgres+redis", marks=pytest.mark.services)])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Amana, Orthanc]:
    orthanc = Orthanc(tmp_path / "orthanc").start()
    request.addfinalizer(orthanc.stop)
    env = orthanc.amana_env()
    # Jobs handed back while the archive is down are sent again once this stale.
    env["AMANA_STALE_AFTER_S"] = "3"
    if request.param == "postgres+redis":
        env["AMANA_DATABASE_URL"] = request.getfixturevalue("pg_url")
        env["AMANA_BROKER_URL"] = request.getfixturevalue("redis_url")
    amana = Amana(tmp_path / "home", **env).start("run")
    request.addfinalizer(amana.stop)
    return amana, orthanc


def test_every_instance_ends_in_orthanc_once_through_an_outage(
    setup: tuple[Amana, Orthanc], tmp_path: Path
) -> None:
    """Rules: with AMANA_ARCHIVE_URL naming a DICOMweb archive, every instance a PACS sent
    ends in the archive exactly once and in the catalog once; an archive stopped mid-way
    costs time only (jobs wait, none quarantined, none lost) and, started again, receives
    what waited; sending everything again adds nothing; no original identifier is in what
    the archive holds (each instance's file read back through Orthanc's REST API); the
    local archive folder stays empty."""
    amana, orthanc = setup
    first = make_study(tmp_path / "first")
    second = make_study(
        tmp_path / "second", patient_name="Essai^Salma", patient_id="AMN-TEST-55017"
    )
    total = len(first.files) + len(second.files)
    assert storescu(amana.dicom_port, first.files).returncode == 0
    wait_until(lambda: _done(amana, len(first.files)), timeout=180)

    orthanc.stop()
    assert storescu(amana.dicom_port, second.files).returncode == 0
    wait_until(lambda: "wait for the archive" in amana.log_text(), timeout=120)
    jobs = _jobs(amana)
    assert jobs["DONE"] == len(first.files) and jobs["QUARANTINED"] == 0

    orthanc.start()
    wait_until(lambda: _done(amana, total), timeout=180)
    assert storescu(amana.dicom_port, [*first.files, *second.files]).returncode == 0
    wait_until(lambda: _done(amana, 2 * total), timeout=180)

    jobs = _jobs(amana)
    assert jobs["QUARANTINED"] == 0 and jobs["DONE"] == 2 * total
    studies = amana.studies()
    assert len(studies) == 2 and sum(s["instances"] for s in studies) == total
    held = orthanc.sop_uids()
    assert len(held) == total and len(set(held)) == total
    store = DicomWebStore(orthanc.archive_url, StoreCredentials(user=USER, password=PASSWORD))
    assert all(store.count(uid) == 1 for uid in held)
    forbidden = identifying_strings(first) + identifying_strings(second)
    for ident in orthanc.instance_ids():
        data = orthanc.file(ident)
        for value in forbidden:
            assert value not in data, "an original identifier survived in the archive"
    assert not list((amana.home / "archive").rglob("*.dcm"))
