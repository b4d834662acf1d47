"""`amana dataset export --to dicomweb+http://...`: the instances sent to a real Orthanc with
its DICOMweb plugin (STOW-RS), the manifest and card written beside, resumable."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from amana.cli_datasets import dataset_app
from amana.keys import ensure_key
from anonymizer.errors import RejectError
from archive.audit.codes import EventId, Outcome
from archive.catalog.models_governance import AuditEvent
from archive.datasets.dicomweb import service_url
from archive.datasets.privacy import QUASI_IDENTIFIERS, k_anonymity
from tests.catalog.conftest import mint
from tests.support.cohort import build_archive
from tests.support.orthanc import Orthanc
from tests.support.services import free_port

runner = CliRunner()


def _run(args: list[str], env: dict[str, str], code: int = 0) -> str:
    result = runner.invoke(dataset_app, args, env=env)
    assert result.exit_code == code, (args, result.output, result.exception)
    return result.output


@pytest.fixture()
def env(db_url: str, tmp_path: Path, sessions: sessionmaker[Session]) -> dict[str, str]:
    home = tmp_path / "home"
    ensure_key(home / "secrets" / "pseudonym.key")
    build_archive(
        sessions, home / "archive", patients=300, seed=5, regions=["Oriental", "Souss-Massa"]
    )
    return {"AMANA_DATABASE_URL": db_url, "AMANA_HOME": str(home)}


def test_export_to_dicomweb(
    env: dict[str, str], sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rules (issue 17, export target dicomweb+http): the server ends holding exactly the
    manifest's instances, each with headers at its manifest row's generalization level; the
    manifest (k >= threshold), card and checksums go to --card-dir; a second run sends
    nothing again; each run is an audited Export naming the DICOMweb target."""
    token = mint(sessions, "researcher")
    _run(["create", "ct", "--token", token, "--where", "modality=CT"], env)
    card_dir = tmp_path / "card"
    archive = Orthanc(tmp_path / "orthanc", auth=False).start()
    base = archive.base
    try:
        target = f"dicomweb+{base}/dicom-web"
        _run(["export", "ct", "--token", token, "--to", target], env, code=2)  # no --card-dir
        first = _run(
            ["export", "ct", "--token", token, "--to", target, "--card-dir", str(card_dir)], env
        )
        with (card_dir / "manifest.csv").open(encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert rows and f"({len(rows)} copied)" in first
        assert k_anonymity(rows, QUASI_IDENTIFIERS) >= 5
        assert set(archive.sop_uids()) == {r["sop_uid"] for r in rows}
        for row in rows[:: max(1, len(rows) // 10)]:
            stored = pydicom.dcmread(io.BytesIO(archive.file_of(row["sop_uid"])))
            assert stored.StudyInstanceUID == row["study_uid"]
            month = row["study_month"]
            if month == "*":
                assert not stored.get("StudyDate")
            elif len(month) == 4:
                assert stored.StudyDate == f"{month}0101"
            if row["manufacturer"] == "*":
                assert not stored.get("Manufacturer")
            if row["model"] == "*":
                assert not stored.get("ManufacturerModelName")
        assert not (card_dir / "files").exists()
        assert (card_dir / "card.html").exists() and (card_dir / "SHA256SUMS").exists()
        again = _run(
            ["export", "ct", "--token", token, "--to", target, "--card-dir", str(card_dir)], env
        )
        assert "(0 copied)" in again
    finally:
        archive.stop()
    with sessions() as session:
        events = list(
            session.scalars(
                select(AuditEvent).where(
                    AuditEvent.event_id == EventId.EXPORT, AuditEvent.outcome == Outcome.SUCCESS
                )
            )
        )
    assert len(events) == 2
    details = [json.loads(e.detail) for e in events]
    assert all(d["dicomweb"] == f"{base}/dicom-web" for d in details)
    assert [d["copied"] for d in details] == [len(rows), 0]


def test_unreachable_dicomweb_target_fails_and_is_audited(
    env: dict[str, str], sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: a DICOMweb server that does not answer fails the export (to be run again; no
    success recorded) and the attempt is an audited Export failure."""
    token = mint(sessions, "researcher")
    _run(["create", "ct", "--token", token, "--where", "modality=CT"], env)
    target = f"dicomweb+http://127.0.0.1:{free_port()}/dicom-web"
    result = runner.invoke(
        dataset_app,
        ["export", "ct", "--token", token, "--to", target, "--card-dir", str(tmp_path / "c")],
        env=env,
    )
    assert result.exit_code != 0
    with sessions() as session:
        outcomes = list(
            session.scalars(select(AuditEvent.outcome).where(AuditEvent.event_id == EventId.EXPORT))
        )
    assert outcomes and Outcome.SUCCESS not in outcomes


@pytest.mark.parametrize(
    "target",
    [
        "dicomweb+http://user:secret@host/dicom-web",
        "dicomweb+ftp://host/x",
        "dicomweb+http:///nohost",
        "dicomweb+https://host/dicom-web?x=1",
    ],
)
def test_dicomweb_target_forms(target: str) -> None:
    """Rule: a DICOMweb target is dicomweb+http(s)://host/path with no credentials (they
    would land in the audit trail), query or fragment."""
    with pytest.raises(RejectError):
        service_url(target)
    assert (
        service_url("dicomweb+https://pacs.example/dicom-web/") == "https://pacs.example/dicom-web"
    )
