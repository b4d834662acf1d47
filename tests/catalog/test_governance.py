"""Profile governance: validated uploads, a second steward's approval, workers follow."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydicom.data import get_testdata_file
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.engine import Deidentifier, key_from_bytes, load_profile
from archive.api import create_app
from archive.catalog.models import Instance, QuarantineEntry
from archive.catalog.models_governance import AuditEvent
from archive.governance.versions import ActiveProfileWatcher, active_profile, refresh_deidentifier
from archive.work.jobs import create_job
from archive.work.pipeline import JobResult, WorkerContext
from ingest.spool import Spool
from tests.catalog.conftest import mint
from tests.paths import REPO_ROOT
from tests.support.pipeline_helpers import process_to_end

PROFILES = REPO_ROOT / "profiles"
NATIONAL = (PROFILES / "ma-national.yaml").read_text(encoding="utf-8")


def _revised(note: str) -> str:
    """The national profile with one house rule added: a new version of the same profile."""
    return NATIONAL.replace(
        "\nattributes:\n",
        "\nattributes:\n"
        "  - tag: (0018,1030)\n"
        "    keyword: ProtocolName\n"
        "    action: X\n"
        f"    note: {note}\n",
        1,
    )


@pytest.fixture()
def client(sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(create_app(sessions, profiles_dir=PROFILES)) as c:
        yield c


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _propose(client: TestClient, token: str, text: str) -> dict[str, object]:
    response = client.post(
        "/profiles", headers=_h(token), files={"profile": ("p.yaml", text.encode(), "text/yaml")}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_revised_profile_text_is_a_real_change() -> None:
    """Rule (fixture check): the revision used below parses and adds an attribute rule."""
    assert "ProtocolName" in _revised("x") and _revised("x") != NATIONAL


def test_invalid_profile_is_refused_with_its_line(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    """Rule: an upload is validated by the workers' loader; the error names the line; nothing
    is stored, but the refusal is audited."""
    steward = mint(sessions, "steward")
    bad = NATIONAL.replace(
        "\nattributes:\n",
        "\nattributes:\n  - tag: (0010,0010)\n    keyword: PatientID\n    action: K\n",
        1,
    )
    response = client.post(
        "/profiles", headers=_h(steward), files={"profile": ("p.yaml", bad.encode(), "text/yaml")}
    )
    assert response.status_code == 422
    line = bad.splitlines().index("    keyword: PatientID") + 1
    assert f"line {line}" in response.json()["error"]
    assert client.get("/profiles", headers=_h(steward)).json() == []
    with sessions() as session:
        refused = session.scalars(select(AuditEvent).where(AuditEvent.outcome == 4)).all()
    assert any('"result":"invalid"' in e.detail for e in refused)


def test_activation_needs_a_second_steward(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    """Rule: a profile activated without a second steward's approval is refused; the proposer
    cannot approve their own version; an auditor cannot activate; after approval it activates
    and the previous active version is retired."""
    alice, bob = mint(sessions, "steward"), mint(sessions, "steward")
    auditor = mint(sessions, "auditor")
    first = _propose(client, alice, _revised("first"))
    assert first["status"] == "PROPOSED" and first["created"] is True
    assert any(c["path"].startswith("attributes[(0018,1030)]") for c in first["diff"])  # type: ignore[attr-defined, union-attr]
    version = first["version"]
    refused = client.post(f"/profiles/{version}/activate", headers=_h(alice))
    assert refused.status_code == 409 and "second steward" in refused.json()["error"]
    assert client.post(f"/profiles/{version}/approve", headers=_h(alice)).status_code == 409
    assert client.post(f"/profiles/{version}/activate", headers=_h(auditor)).status_code == 403
    with sessions() as session:
        assert active_profile(session) is None
    approved = client.post(f"/profiles/{version}/approve", headers=_h(bob))
    assert approved.status_code == 200 and approved.json()["approved_by"] == [bob.split(".")[0]]
    activated = client.post(f"/profiles/{version}/activate", headers=_h(alice))
    assert activated.status_code == 200 and activated.json()["status"] == "ACTIVE"

    second = _propose(client, bob, _revised("second"))
    client.post(f"/profiles/{second['version']}/approve", headers=_h(alice))
    client.post(f"/profiles/{second['version']}/activate", headers=_h(bob))
    statuses = {
        v["version"]: v["status"] for v in client.get("/profiles", headers=_h(auditor)).json()
    }
    assert statuses == {version: "RETIRED", second["version"]: "ACTIVE"}
    with sessions() as session:
        active = active_profile(session, "ma-national")
        steps = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.object_type == "profile_version")
        ).all()
    assert active is not None and active.version == second["version"]
    assert sum('"step":"activate"' in d and "refused" not in d for d in steps) == 2
    assert sum('"refused"' in d for d in steps) == 2  # self-approval and early activation

    rollback = client.post(f"/profiles/{version}/activate", headers=_h(bob))
    assert rollback.status_code == 200 and rollback.json()["status"] == "ACTIVE"
    with sessions() as session:
        assert active_profile(session, "ma-national").version == version  # type: ignore[union-attr]


def test_dry_run_returns_explain_table_and_preview(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    """Rule: a steward can try a proposed version on sample files: explain table, outcome
    and, for an image the pixel step examines, a picture of its pixels as archived (none
    for an image it leaves alone); nothing is archived."""
    steward = mint(sessions, "steward")
    proposed = _propose(client, steward, _revised("dry"))
    samples = [
        Path(get_testdata_file(name)).read_bytes() for name in ("CT_small.dcm", "MR_small.dcm")
    ]
    response = client.post(
        f"/profiles/{proposed['version']}/dry-run",
        headers=_h(steward),
        files=[
            ("samples", (f"{i}.dcm", data, "application/dicom")) for i, data in enumerate(samples)
        ],
    )
    assert response.status_code == 200, response.text
    ct, mr = response.json()["results"]
    for result in (ct, mr):
        assert result["result"] == "archived", result
        assert any(row["keyword"] == "PatientName" for row in result["explain"])
    assert ct["pixel_actions"][0] == "not_examined"
    assert ct["pixel_step"]["step"] == "not_examined"
    assert mr["pixel_step"]["step"] in ("device_rules", "ocr")
    assert ct["preview_png"] is None and ct["preview_name"] is None
    assert mr["pixel_actions"][0].startswith("examined:")
    assert mr["preview_name"] == "masked-frame-1.png"
    assert base64.b64decode(mr["preview_png"]).startswith(b"\x89PNG")
    with sessions() as session:
        assert session.scalar(select(Instance.id)) is None


def test_dry_run_answer_carries_no_phi_and_tells_the_pixel_step(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    """Rule: the dry-run answer masks before-values as `amana profile explain` does: a
    made-up patient's name, ID and birth date appear nowhere in the whole response body,
    while non-identifying values (Modality, Manufacturer) are shown; and it says what the
    pixel step does to each sample, agreeing with the outcome."""
    from tests.anonymizer.factory import Identity, ct_instance, to_bytes

    steward = mint(sessions, "steward")
    proposed = _propose(client, steward, _revised("phi"))
    who = Identity()
    ds = ct_instance(who)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.BurnedInAnnotation = "NO"
    response = client.post(
        f"/profiles/{proposed['version']}/dry-run",
        headers=_h(steward),
        files=[("samples", ("one.dcm", to_bytes(ds), "application/dicom"))],
    )
    assert response.status_code == 200, response.text
    for value in (who.family, who.given, who.patient_id, who.birth_date, who.accession):
        assert value not in response.text
    (result,) = response.json()["results"]
    before = {row["keyword"]: row["before"] for row in result["explain"]}
    assert before["Modality"] == "CT" and before["Manufacturer"] == "FICTIVE MEDICAL"
    assert before["PatientName"].startswith("<masked PN")
    step = result["pixel_step"]
    assert step["step"] == "not_examined" and "Burned In Annotation NO" in step["reason"]
    assert result["pixel_actions"][0] == "not_examined"


def test_worker_follows_the_activated_version(
    client: TestClient, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: after approval and activation, a newly received instance is processed with the
    new version, and the catalog says so (instance and study)."""
    watcher = ActiveProfileWatcher(sessions, PROFILES, "ma-national", interval_s=0)
    on_disk = load_profile("ma-national", PROFILES)
    assert watcher.current().version == on_disk.version
    alice, bob, auditor = (mint(sessions, r) for r in ("steward", "steward", "auditor"))
    version = str(_propose(client, alice, _revised("worker"))["version"])
    client.post(f"/profiles/{version}/approve", headers=_h(bob))
    assert client.post(f"/profiles/{version}/activate", headers=_h(alice)).status_code == 200

    before = Deidentifier(on_disk, key_from_bytes(os.urandom(32)))
    assert refresh_deidentifier(before, watcher) is not before
    profile = refresh_deidentifier(before, watcher).profile
    assert profile.version == version != on_disk.version
    ctx = WorkerContext(
        sessions=sessions,
        deidentifier=refresh_deidentifier(before, watcher),
        spool_dir=tmp_path / "spool",
        archive_dir=tmp_path / "archive",
        quarantine_dir=tmp_path / "quarantine",
        stale_after=timedelta(seconds=300),
    )
    name, size = Spool(ctx.spool_dir, 0).copy_in(Path(get_testdata_file("CT_small.dcm")))
    with sessions.begin() as session:
        job_id = create_job(
            session, spool_name=name, size_bytes=size, calling_ae="PACS1", source_kind="dicom"
        )
    result = process_to_end(ctx, [job_id])[job_id]
    with sessions() as session:
        held = [(q.reason, q.message) for q in session.scalars(select(QuarantineEntry))]
    assert result is JobResult.ARCHIVED, held
    with sessions() as session:
        instance = session.scalars(select(Instance)).one()
    assert instance.profile_version == version
    page = client.get(f"/studies?profile_version={version}", headers=_h(auditor)).json()
    assert page["total"] == 1 and page["items"][0]["profile_version"] == version
