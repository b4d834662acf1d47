"""`/datasets` over HTTP: roles, a frozen cohort made with the API's split key, refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from archive.api import create_app
from archive.catalog.models_governance import AuditEvent
from archive.datasets.models import DatasetItem
from tests.catalog.conftest import mint
from tests.paths import REPO_ROOT
from tests.support.cohort import build_archive


@pytest.fixture()
def client(sessions: sessionmaker[Session], tmp_path: Path) -> Iterator[TestClient]:
    build_archive(sessions, tmp_path / "archive", patients=300, seed=17)
    app = create_app(sessions, profiles_dir=REPO_ROOT / "profiles", dataset_secret=b"s" * 32)
    with TestClient(app) as c:
        yield c


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_datasets_by_role(client: TestClient, sessions: sessionmaker[Session]) -> None:
    """Rule: researchers create and list datasets; other roles are refused (403, audited);
    a dataset is immutable (same name: 409) and its query is checked (unknown filter: 422);
    every patient of the created set sits in one split."""
    researcher = _auth(mint(sessions, "researcher"))
    body = {"name": "women-ct", "where": {"modality": "CT", "sex": "F", "age_min": 40}}
    created = client.post("/datasets", json=body, headers=researcher)
    assert created.status_code == 201, created.text
    assert created.json()["patients"] > 0
    assert client.post("/datasets", json=body, headers=researcher).status_code == 409
    bad = {"name": "x", "where": {"patient_name": "A"}}
    assert client.post("/datasets", json=bad, headers=researcher).status_code == 422
    for role in ("auditor", "steward", "admin"):
        other = _auth(mint(sessions, role))
        assert client.post("/datasets", json={"name": "y"}, headers=other).status_code == 403
        assert client.get("/datasets", headers=other).status_code == 403
    listed = client.get("/datasets", headers=researcher).json()
    assert [d["name"] for d in listed] == ["women-ct"]
    one = client.get("/datasets/women-ct", headers=researcher).json()
    assert one["holds_sealed_patients"] is False
    assert client.get("/datasets/nothing", headers=researcher).status_code == 404
    with sessions() as session:
        pairs = set(session.execute(select(DatasetItem.patient_id, DatasetItem.split)).all())
        details = [json.loads(e.detail) for e in session.scalars(select(AuditEvent))]
    forbidden = [d for d in details if d.get("status") == 403 and d.get("route") == "/datasets"]
    patients = [p for p, _ in pairs]
    assert len(patients) == len(set(patients))
    assert len(forbidden) == 6
