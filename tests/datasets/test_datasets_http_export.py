"""Seal and export over HTTP: roles, the export root, the profiles' thresholds, the stream,
and the audit trail of every attempt."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from archive.api import create_app
from archive.audit.codes import EventId, Outcome
from archive.catalog.models_governance import AuditEvent
from archive.datasets.privacy import QUASI_IDENTIFIERS, k_anonymity
from tests.catalog.conftest import mint
from tests.paths import REPO_ROOT
from tests.support.cohort import build_archive

PROFILE_K = 6  # the test's copy of the national profile raises k above the default


@dataclass
class Api:
    client: TestClient
    root: Path
    researcher: dict[str, str]
    certifier: dict[str, str]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def api(sessions: sessionmaker[Session], tmp_path: Path) -> Iterator[Api]:
    # Two regions only: an archive dense enough for k = 6 with 600 patients.
    build_archive(
        sessions, tmp_path / "archive", patients=600, seed=23, regions=["Oriental", "Souss-Massa"]
    )
    profiles = tmp_path / "profiles"
    shutil.copytree(REPO_ROOT / "profiles", profiles)
    national = profiles / "ma-national.yaml"
    national.write_text(national.read_text().replace("k_anonymity: 5", f"k_anonymity: {PROFILE_K}"))
    root = tmp_path / "exports"
    app = create_app(
        sessions,
        profiles_dir=profiles,
        dataset_secret=b"s" * 32,
        archive_dir=tmp_path / "archive",
        export_dir=root,
    )
    with TestClient(app) as client:
        yield Api(
            client, root, _auth(mint(sessions, "researcher")), _auth(mint(sessions, "certifier"))
        )


def _events(sessions: sessionmaker[Session], event_id: EventId) -> list[AuditEvent]:
    with sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.event_id == event_id)))


def _check_folder(folder: Path, k: int) -> dict[str, object]:
    sums = (folder / "SHA256SUMS").read_text().splitlines()
    assert sums
    for line in sums:
        digest, rel = line.split("  ", 1)
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest
    import csv

    with (folder / "manifest.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert k_anonymity(rows, QUASI_IDENTIFIERS) >= k
    card: dict[str, object] = json.loads((folder / "card.json").read_text())
    return card


def test_seal_and_export_over_http(api: Api, sessions: sessionmaker[Session]) -> None:
    """Rules (issue 17): only a certifier seals (a researcher gets 403, audited); a
    researcher exporting a sealed set is refused (403) and the attempt is an audited Export
    failure; a certifier's export lands in the named folder under the export root with
    checksums that match and k >= the profile's threshold (6 here, which a caller's lower
    `k` does not lower), and the card cites the profile it took the threshold from."""
    client = api.client
    made = client.post(
        "/datasets",
        json={"name": "cert", "where": {"modality": "CT"}, "proportions": {"test": 1}},
        headers=api.researcher,
    )
    assert made.status_code == 201, made.text
    assert client.post("/datasets/cert/seal", headers=api.researcher).status_code == 403
    sealed = client.post("/datasets/cert/seal", headers=api.certifier)
    assert sealed.status_code == 200, sealed.text
    assert sealed.json()["sealed_patients"] > 0
    assert client.post("/datasets/cert/seal", headers=api.certifier).status_code == 409

    refused = client.post(
        "/datasets/cert/export", json={"folder": "team/cert"}, headers=api.researcher
    )
    assert refused.status_code == 403
    assert not (api.root / "team" / "cert").exists()
    failed = [e for e in _events(sessions, EventId.EXPORT) if e.outcome == Outcome.MINOR_FAILURE]
    assert [e.object_id for e in failed] == ["cert"]
    assert json.loads(failed[0].detail)["status"] == 403

    done = client.post(
        "/datasets/cert/export", json={"folder": "team/cert", "k": 2}, headers=api.certifier
    )
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["sealed"] is True and body["k_threshold"] == PROFILE_K
    assert body["k"] >= PROFILE_K and body["instances"] > 0
    card = _check_folder(api.root / "team" / "cert", PROFILE_K)
    assert card["k_threshold"] == PROFILE_K
    sources = card["thresholds_from"]
    assert isinstance(sources, dict) and sources["ma-national"]["k_anonymity"] == PROFILE_K
    ok = [e for e in _events(sessions, EventId.EXPORT) if e.outcome == Outcome.SUCCESS]
    assert [e.object_id for e in ok] == ["cert"] and ok[0].actor_role == "certifier"
    assert json.loads(ok[0].detail)["instances"] == body["instances"]
    seals = [e for e in _events(sessions, EventId.SECURITY_ALERT) if e.object_id == "cert"]
    assert any(e.outcome == Outcome.SUCCESS for e in seals)


BAD_FOLDERS = ["../outside", "/tmp/outside", "a/../../outside", "a\\..\\b", ".", "", ".streams/x"]


def test_export_stays_inside_the_export_root(api: Api, sessions: sessionmaker[Session]) -> None:
    """Rule: an HTTP export writes only under the export root: a path that is absolute,
    climbs out, or is not plain names is refused (422) before anything is written, and each
    refusal is an audited Export failure."""
    client = api.client
    assert client.post("/datasets", json={"name": "all"}, headers=api.researcher).status_code == 201
    before = set(api.root.parent.rglob("*"))
    for folder in [*BAD_FOLDERS, "a//b"]:
        answer = client.post(
            "/datasets/all/export", json={"folder": folder}, headers=api.researcher
        )
        assert answer.status_code == 422, (folder, answer.text)
    assert set(api.root.parent.rglob("*")) == before
    failed = [e for e in _events(sessions, EventId.EXPORT) if e.outcome == Outcome.MINOR_FAILURE]
    assert [e.object_id for e in failed] == ["all"] * (len(BAD_FOLDERS) + 1)


def test_export_does_not_follow_a_symlink_out(api: Api, tmp_path: Path) -> None:
    """Rule: a folder inside the export root that is a link to elsewhere is refused (422):
    the root is checked after symlinks are followed."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    api.root.mkdir(parents=True, exist_ok=True)
    (api.root / "link").symlink_to(elsewhere, target_is_directory=True)
    client = api.client
    assert client.post("/datasets", json={"name": "all"}, headers=api.researcher).status_code == 201
    answer = client.post(
        "/datasets/all/export", json={"folder": "link/run1"}, headers=api.researcher
    )
    assert answer.status_code == 422, answer.text
    assert list(elsewhere.iterdir()) == []


def test_streamed_export_is_a_tar_of_the_same_export(api: Api) -> None:
    """Rule: without a folder the export comes back as a tar archive holding the files,
    manifest, card and checksums (which match the files), and nothing of it stays on the
    server."""
    client = api.client
    made = client.post(
        "/datasets", json={"name": "ct", "where": {"modality": "CT"}}, headers=api.researcher
    )
    assert made.status_code == 201
    answer = client.post("/datasets/ct/export", json={}, headers=api.researcher)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(answer.content)) as tar:
        members = {m.name: tar.extractfile(m) for m in tar.getmembers() if m.isfile()}
        data = {name: f.read() for name, f in members.items() if f is not None}
    assert {"ct/manifest.csv", "ct/manifest.parquet", "ct/card.json", "ct/SHA256SUMS"} <= set(data)
    sums = data["ct/SHA256SUMS"].decode().splitlines()
    assert any(line.endswith(".dcm") for line in sums)
    for line in sums:
        digest, rel = line.split("  ", 1)
        assert hashlib.sha256(data[f"ct/{rel}"]).hexdigest() == digest
    leftovers = [p for p in (api.root / ".streams").rglob("*") if p.is_file()]
    assert leftovers == []
