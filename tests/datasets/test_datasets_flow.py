"""A whole dataset life from the command line, on a generated archive of 2,400 patients
across the regions: stratified training set, sealed certification set, refused and allowed
exports, and what an export holds."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from amana.cli_datasets import dataset_app
from amana.keys import ensure_key
from archive.audit.codes import EventId, Outcome
from archive.catalog.models_governance import AuditEvent
from archive.datasets.models import Dataset, DatasetItem, SealedPatient
from archive.datasets.privacy import QUASI_IDENTIFIERS, k_anonymity
from tests.catalog.conftest import mint
from tests.support.cohort import build_archive

runner = CliRunner()
PATIENTS = 2400


def _run(args: list[str], env: dict[str, str], code: int = 0) -> str:
    result = runner.invoke(dataset_app, args, env=env)
    assert result.exit_code == code, (args, result.output, result.exception)
    return result.output


@pytest.fixture()
def env(db_url: str, tmp_path: Path, sessions: sessionmaker[Session]) -> dict[str, str]:
    home = tmp_path / "home"
    ensure_key(home / "secrets" / "pseudonym.key")
    build_archive(sessions, home / "archive", patients=PATIENTS, seed=2026)
    return {"AMANA_DATABASE_URL": db_url, "AMANA_HOME": str(home)}


def _manifest(folder: Path) -> list[dict[str, str]]:
    with (folder / "manifest.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _headers_match(ds: pydicom.Dataset, row: dict[str, str]) -> None:
    """A file says no more than its manifest row: dates at the row's level, no exact age
    behind a widened band, no manufacturer once suppressed."""
    month = row["study_month"]
    for keyword in ("StudyDate", "SeriesDate"):
        value = str(ds.get(keyword, ""))
        if month == "*":
            assert value == ""
        elif len(month) == 4:
            assert value == f"{month}0101"
        else:
            assert value[:6] == month
    low, high = row["age_band"].split("-")
    if int(high) - int(low) > 9:
        assert "PatientAge" not in ds
    if row["manufacturer"] == "*":
        assert not ds.Manufacturer and not ds.ManufacturerModelName


def _check_export(folder: Path, threshold: int) -> list[dict[str, str]]:
    """What every export must hold: k >= threshold over its quasi-identifiers (recomputed
    from the manifest), checksums that match the files, the same rows in Parquet and CSV,
    one split per patient, and the card."""
    rows = _manifest(folder)
    assert rows
    assert k_anonymity(rows, QUASI_IDENTIFIERS) >= threshold
    card = json.loads((folder / "card.json").read_text())
    assert card["k_anonymity"] >= threshold
    assert card["k_anonymity"] == k_anonymity(rows, QUASI_IDENTIFIERS)
    for row in rows:
        data = (folder / row["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        _headers_match(pydicom.dcmread(io.BytesIO(data)), row)
    sums = (folder / "SHA256SUMS").read_text().splitlines()
    listed = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in sums}
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {
        "SHA256SUMS"
    }
    assert set(listed) == on_disk
    for rel, digest in listed.items():
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest
    table = pq.read_table(folder / "manifest.parquet").to_pylist()
    assert [r["sop_uid"] for r in table] == [r["sop_uid"] for r in rows]
    splits_of: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        splits_of[row["patient"]].add(row["split"])
    assert all(len(s) == 1 for s in splits_of.values())
    assert (folder / "card.html").read_text().count("data:image/png;base64,") == 5
    assert (folder / "charts" / "region.svg").exists()
    return rows


def test_dataset_life(env: dict[str, str], sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """Rule (issue 17): no patient in two splits; sealed patients absent from later training
    datasets; a researcher refused (and audited) on a sealed set, even through a dataset
    made before the seal; k >= threshold in every export; manifest checksums match files;
    an export resumes without copying again."""
    researcher = mint(sessions, "researcher")
    certifier = mint(sessions, "certifier")

    early = ["create", "ct-early", "--token", researcher, "--where", "modality=CT"]
    _run(early, env)
    _run(
        [
            "create",
            "cert-2026",
            "--token",
            certifier,
            "--where",
            "region=Casablanca-Settat",
            "--split",
            "test=1",
        ],
        env,
    )
    _run(["seal", "cert-2026", "--token", researcher], env, code=1)  # certifiers only
    assert "sealed" in _run(["seal", "cert-2026", "--token", certifier], env)
    with sessions() as session:
        sealed_ids = set(session.scalars(select(SealedPatient.patient_id)))
    assert sealed_ids

    made = json.loads(_run(["create", "train-all", "--token", researcher], env))
    assert made["patients"] > 1000
    with sessions() as session:
        later = set(
            session.scalars(
                select(DatasetItem.patient_id)
                .join(Dataset, Dataset.id == DatasetItem.dataset_id)
                .where(Dataset.name == "train-all")
            )
        )
    assert later and not later & sealed_ids
    chest = ["create", "ct-train", "--token", researcher, "--where", "modality=CT"]
    _run([*chest, "--parent", "train-all"], env)

    # Exports: the researcher is refused on the sealed set and on the early set holding
    # sealed patients; each refusal is an audited Export attempt that failed.
    out = tmp_path / "out"
    for name in ("cert-2026", "ct-early"):
        _run(["export", name, "--token", researcher, "--to", str(out / name)], env, code=1)
        assert not (out / name / "manifest.csv").exists()
    _run(["export", "train-all", "--token", certifier, "--to", str(out / "x")], env, code=1)
    with sessions() as session:
        events = list(
            session.scalars(select(AuditEvent).where(AuditEvent.event_id == EventId.EXPORT))
        )
    refused = [e for e in events if e.outcome == Outcome.MINOR_FAILURE]
    assert {e.object_id for e in refused} == {"cert-2026", "ct-early", "train-all"}

    _run(["export", "cert-2026", "--token", certifier, "--to", str(out / "cert")], env)
    cert_rows = _check_export(out / "cert", 5)
    assert {r["split"] for r in cert_rows} == {"test"}
    assert {r["region"] for r in cert_rows} == {"Casablanca-Settat"}

    _run(["export", "ct-train", "--token", researcher, "--to", str(out / "train")], env)
    train_rows = _check_export(out / "train", 5)
    assert {r["split"] for r in train_rows} == {"train", "validation", "test"}
    cert_patients = {r["patient"] for r in cert_rows}
    assert not cert_patients & {r["patient"] for r in train_rows}
    assert "Casablanca-Settat" not in {r["region"] for r in train_rows}
    assert {r["modality"] for r in train_rows} == {"CT"}

    again = _run(["export", "ct-train", "--token", researcher, "--to", str(out / "train")], env)
    assert "(0 copied)" in again

    with sessions() as session:
        done = list(
            session.scalars(
                select(AuditEvent).where(
                    AuditEvent.event_id == EventId.EXPORT, AuditEvent.outcome == Outcome.SUCCESS
                )
            )
        )
    assert len(done) == 3
    assert all(json.loads(e.detail)["instances"] > 0 for e in done)
    assert {e.actor_role for e in done} == {"certifier", "researcher"}
