"""The HTTP API against real SQLite and PostgreSQL catalogs, through httpx (TestClient)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from archive import audit
from archive.api import create_app
from archive.catalog.models import Job, JobStatus, QuarantineEntry, QuarantineStatus
from archive.catalog.models_governance import AuditEvent
from archive.work.jobs import create_job
from tests.catalog.conftest import add_instance, hold, mint, person
from tests.paths import PROFILES_DIR


@pytest.fixture()
def client(sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(create_app(sessions, profiles_dir=PROFILES_DIR)) as c:
        yield c


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _events(sessions: sessionmaker[Session]) -> list[AuditEvent]:
    with sessions() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def _corpus(sessions: sessionmaker[Session]) -> None:
    """Seven studies across regions, modalities, dates, versions; one quarantined job."""
    specs = [
        ("2.25.1", "CT", "Casablanca-Settat", "20240105", "v1", 3),
        ("2.25.2", "MR", "Casablanca-Settat", "20240210", "v1", 1),
        ("2.25.3", "CT", "Rabat-Sale-Kenitra", "20240301", "v2", 2),
        ("2.25.4", "CR", "Rabat-Sale-Kenitra", "20231120", "v2", 1),
        ("2.25.5", "CT", "Fes-Meknes", "20240415", "v2", 1),
        ("2.25.6", "MR", None, "20240502", "v1", 2),
        ("2.25.7", "CT", "Fes-Meknes", "20240601", "v1", 1),
    ]
    for study, modality, region, date, version, count in specs:
        for n in range(count):
            add_instance(
                sessions,
                study=study,
                series=f"{study}.1",
                sop=f"{study}.1.{n}",
                modality=modality,
                region=region,
                study_date=date,
                version=version,
                when=datetime(2025, 1 + int(study[-1]) % 3, 15, tzinfo=UTC),
            )
    with sessions.begin() as session:
        job_id = create_job(
            session, spool_name="q1", size_bytes=5, calling_ae="PACS1", source_kind="dicom"
        )
        session.get_one(Job, job_id).status = JobStatus.QUARANTINED
        session.add(
            QuarantineEntry(
                job_id=job_id,
                reason="residual_pixel_text",
                message="text still visible after redaction",
                stored_name="q1",
                size_bytes=5,
                status=QuarantineStatus.HELD,
            )
        )


def test_health_is_open_and_keeps_its_shape(client: TestClient) -> None:
    """Rule: /health needs no token and returns status and job counts (the lead polls it)."""
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["jobs"]["RECEIVED"] == 0


def test_roles_are_enforced(client: TestClient, sessions: sessionmaker[Session]) -> None:
    """Rule: each role reaches only its own endpoints — an auditor cannot activate a profile,
    a steward cannot mint tokens, an admin cannot read the catalog; no token is 401."""
    auditor, steward, admin = (mint(sessions, r) for r in ("auditor", "steward", "admin"))
    person(sessions, "ethics", "auditor")
    assert client.get("/studies").status_code == 401
    assert client.get("/studies", headers=_auth("tok_000000000000.nope")).status_code == 401
    assert client.get("/studies", headers=_auth(auditor)).status_code == 200
    assert client.post("/profiles/1/activate", headers=_auth(auditor)).status_code == 403
    assert client.post("/profiles/1/approve", headers=_auth(auditor)).status_code == 403
    for not_admin in (steward, auditor):
        minting = client.post("/tokens", json={"user": "ethics"}, headers=_auth(not_admin))
        assert minting.status_code == 403
    assert client.get("/studies", headers=_auth(admin)).status_code == 403
    assert client.get("/audit", headers=_auth(steward)).status_code == 403
    assert client.get("/quarantine", headers=_auth(steward)).status_code == 200
    assert (
        client.post(
            "/sources", json={"ae_title": "X", "address": "10.0.0.1"}, headers=_auth(steward)
        ).status_code
        == 403
    )
    minted = client.post(
        "/tokens", json={"user": "ethics", "label": "ethics"}, headers=_auth(admin)
    )
    assert minted.status_code == 201
    new_token = minted.json()["token"]
    assert client.get("/audit", headers=_auth(new_token)).status_code == 200
    revoked = client.delete(f"/tokens/{minted.json()['token_id']}", headers=_auth(admin))
    assert revoked.status_code == 204
    assert client.get("/audit", headers=_auth(new_token)).status_code == 401


def test_every_request_leaves_an_audit_event(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    """Rule: every request (allowed, refused, unauthenticated, not found) is audited with
    actor, route and status; nothing but token ids is recorded about the caller."""
    _corpus(sessions)
    auditor, admin = mint(sessions, "auditor"), mint(sessions, "admin")
    auditor_id = auditor.split(".")[0]
    calls = [
        ("GET", "/studies?modality=CT&limit=2", auditor, 200),
        ("GET", "/studies/2.25.3", auditor, 200),
        ("GET", "/studies/2.25.999", auditor, 404),
        ("GET", "/studies?format=csv", auditor, 200),
        ("GET", "/statistics", auditor, 200),
        ("GET", "/quarantine", auditor, 200),
        ("GET", "/audit", auditor, 200),
        ("GET", "/audit/verify", auditor, 200),
        ("GET", "/profiles", auditor, 200),
        ("GET", "/sources", admin, 200),
        ("GET", "/tokens", auditor, 200),
        ("GET", "/users", auditor, 200),
        ("GET", "/studies", admin, 403),
        ("GET", "/studies", None, 401),
        ("GET", "/docs", None, 200),
        ("GET", "/no-such-route", None, 404),
    ]
    for method, url, token, expected in calls:
        before = len(_events(sessions))
        response = client.request(method, url, headers=_auth(token) if token else {})
        assert response.status_code == expected, (url, response.text)
        events = _events(sessions)
        assert len(events) == before + 1, url
        last = events[-1]
        assert f'"status":{expected}' in last.detail
        if token == auditor:
            assert last.actor == auditor_id and last.actor_role == "auditor"
        secret = token.split(".")[1] if token else "-"
        assert all(secret not in (e.detail + e.actor) for e in events)
    by_url = _events(sessions)
    assert by_url[-3].event_id == "110114" and by_url[-3].outcome == 4  # 401: User Auth
    study_read = [e for e in by_url if e.object_id == "2.25.3"]
    assert study_read and study_read[0].event_id == "110112"
    export = [e for e in by_url if e.event_id == "110106"]  # Data Export
    assert export and '"rows":7' in export[0].detail
    with sessions() as session:
        from archive.audit import verify

        assert verify(session).ok


def test_unmatched_free_text_filters_are_not_recorded(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    """Rule: a search value that matches nothing (it could be a name someone typed) does not
    reach the audit trail; a value the catalog holds is recorded."""
    _corpus(sessions)
    auditor = mint(sessions, "auditor")
    client.get("/studies?region=Testpatient%20Fatima", headers=_auth(auditor))
    client.get("/studies?region=Fes-Meknes", headers=_auth(auditor))
    events = _events(sessions)
    everything = "".join(e.detail + (e.object_id or "") for e in events)
    assert "Testpatient" not in everything and "Fatima" not in everything
    assert "Fes-Meknes" in events[-1].detail


def _uids(page: dict[str, object]) -> list[str]:
    return [item["study_uid"] for item in page["items"]]  # type: ignore[attr-defined, index]


def test_search_filters_and_pagination(client: TestClient, sessions: sessionmaker[Session]) -> None:
    """Rule: each filter returns exactly the matching studies; pages partition the result."""
    _corpus(sessions)
    h = _auth(mint(sessions, "auditor"))

    def get(query: str) -> dict[str, object]:
        response = client.get(f"/studies?{query}", headers=h)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    assert _uids(get("modality=CT")) == ["2.25.1", "2.25.3", "2.25.5", "2.25.7"]
    assert _uids(get("region=Rabat-Sale-Kenitra")) == ["2.25.3", "2.25.4"]
    assert _uids(get("profile_version=v2")) == ["2.25.3", "2.25.4", "2.25.5"]
    assert _uids(get("date_from=20240201&date_to=20240415")) == ["2.25.2", "2.25.3", "2.25.5"]
    assert _uids(get("modality=CT&profile_version=v1&date_from=20240301")) == ["2.25.7"]
    assert _uids(get("status=COMPLETE")) == []
    assert len(_uids(get("status=RECEIVING"))) == 7
    assert client.get("/studies?date_from=2024-01-01", headers=h).status_code == 422
    pages = [get(f"limit=3&offset={o}") for o in (0, 3, 6)]
    assert [p["total"] for p in pages] == [7, 7, 7]
    assert sum((_uids(p) for p in pages), []) == [f"2.25.{n}" for n in range(1, 8)]
    first = get("limit=1")["items"][0]  # type: ignore[index]
    assert first["instances"] == 3 and first["modalities"] == ["CT"]
    assert first["profile_versions"] == ["v1"]


def test_csv_export_matches_search(client: TestClient, sessions: sessionmaker[Session]) -> None:
    """Rule: the CSV export of a search has exactly the rows and values of that search."""
    _corpus(sessions)
    h = _auth(mint(sessions, "auditor"))
    for query in ("modality=MR", "region=Fes-Meknes&profile_version=v2", ""):
        page = client.get(f"/studies?{query}&limit=1000", headers=h).json()
        response = client.get(f"/studies?{query}&format=csv", headers=h)
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [r["study_uid"] for r in rows] == _uids(page)
        for row, item in zip(rows, page["items"], strict=True):
            assert row["instances"] == str(item["instances"])
            assert row["modalities"] == ";".join(item["modalities"])
            assert row["region"] == (item["region"] or "")
    quarantine = client.get("/quarantine?format=csv", headers=h).text
    assert "residual_pixel_text" in quarantine
    exported = client.get("/audit?format=csv", headers=h)
    audit_csv = list(csv.DictReader(io.StringIO(exported.text)))
    audit_json = client.get("/audit?limit=1000", headers=h).json()
    # The JSON search (newest first) came after the export, so it sees the export's own event
    # too, at its head; the export stops at the moment it was asked for, and closes with
    # that head (seq and hash), also sent as a header.
    newest_first = [str(i["seq"]) for i in audit_json["items"]]
    *events, head_row = audit_csv
    assert [r["seq"] for r in events] == list(reversed(newest_first))[:-1]
    assert head_row["event"] == audit.HEAD_ROW_EVENT
    assert (head_row["seq"], head_row["hash"]) == (events[-1]["seq"], events[-1]["hash"])
    assert exported.headers["X-Amana-Audit-Head"] == f"{head_row['seq']}:{head_row['hash']}"
    # Paging by sequence number walks the same events, each once, with no offset.
    walked: list[str] = []
    before: int | None = None
    while True:
        params = {"limit": 7, **({"before_seq": before} if before else {})}
        page = client.get("/audit", headers=h, params=params).json()
        walked += [str(i["seq"]) for i in page["items"]]
        before = page["next_before_seq"]
        if before is None:
            break
    assert walked[-len(newest_first) :] == newest_first


def test_study_detail_and_statistics(client: TestClient, sessions: sessionmaker[Session]) -> None:
    """Rule: a study shows its series, instances with profile version and hash, and its jobs;
    statistics count per region, modality and month and give quarantine rates by reason."""
    _corpus(sessions)
    h = _auth(mint(sessions, "auditor"))
    detail = client.get("/studies/2.25.1", headers=h).json()
    instances = detail["series_list"][0]["instances"]
    assert [i["sop_uid"] for i in instances] == ["2.25.1.1.0", "2.25.1.1.1", "2.25.1.1.2"]
    assert {i["profile_version"] for i in instances} == {"v1"}
    assert len(detail["jobs"]) == 3 and detail["jobs"][0]["calling_ae"] == "PACS1"
    stats = client.get("/statistics", headers=h).json()
    regions = {r["region"]: r for r in stats["by_region"]}
    assert regions["Casablanca-Settat"] == {
        "region": "Casablanca-Settat",
        "studies": 2,
        "instances": 4,
    }
    modalities = {m["modality"]: m["instances"] for m in stats["by_modality"]}
    assert modalities == {"CT": 7, "MR": 3, "CR": 1}
    assert sum(m["studies"] for m in stats["by_month"]) == 7
    assert stats["quarantine"]["quarantined"] == 1
    assert stats["quarantine"]["by_reason"][0]["reason"] == "residual_pixel_text"
    assert stats["quarantine"]["rate"] == pytest.approx(1 / 12, abs=1e-5)
    stats_csv = client.get("/statistics?format=csv", headers=h).text
    assert "by_region,Fes-Meknes,studies,2" in stats_csv


def test_sources_admin(client: TestClient, sessions: sessionmaker[Session]) -> None:
    """Rule: an admin registers and removes sources; bad addresses are refused with 422."""
    h = _auth(mint(sessions, "admin"))
    created = client.post(
        "/sources",
        headers=h,
        json={"ae_title": "CHU_RABAT", "address": "10.20.0.0/16", "region": "Rabat-Sale-Kenitra"},
    )
    assert created.status_code == 201, created.text
    assert (
        client.post(
            "/sources", headers=h, json={"ae_title": "CHU_RABAT", "address": "10.1.1.1"}
        ).status_code
        == 409
    )
    assert (
        client.post(
            "/sources", headers=h, json={"ae_title": "X", "address": "not-an-ip"}
        ).status_code
        == 422
    )
    listed = client.get("/sources", headers=h).json()
    assert listed[0]["address"] == "10.20.0.0/16"
    assert client.delete("/sources/CHU_RABAT", headers=h).status_code == 204
    assert client.get("/sources", headers=h).json() == []
    with sessions() as session:
        count = session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.object_id == "CHU_RABAT")
        )
    assert count == 3


def test_steward_retries_and_purges_quarantine(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: stewards (not auditors) retry or purge a held original over HTTP; the job goes
    back to RECEIVED and is published; each action is audited with the steward's token id."""
    quarantine_dir, spool_dir = tmp_path / "quarantine", tmp_path / "spool"
    quarantine_dir.mkdir()
    (spool_dir / "incoming").mkdir(parents=True)
    entries = [hold(sessions, quarantine_dir, name) for name in ("held1", "held2")]
    published: list[int] = []
    app = create_app(
        sessions,
        profiles_dir=PROFILES_DIR,
        quarantine_dir=quarantine_dir,
        spool_dir=spool_dir,
        publish=published.extend,
    )
    steward, auditor = mint(sessions, "steward"), mint(sessions, "auditor")
    with TestClient(app) as client:
        assert (
            client.post(f"/quarantine/{entries[0]}/retry", headers=_auth(auditor)).status_code
            == 403
        )
        retried = client.post(f"/quarantine/{entries[0]}/retry", headers=_auth(steward))
        assert retried.status_code == 200 and retried.json()["queued"] is True
        assert (
            client.post(f"/quarantine/{entries[0]}/retry", headers=_auth(steward)).status_code
            == 409
        )
        assert (
            client.post(f"/quarantine/{entries[1]}/purge", headers=_auth(steward)).status_code
            == 200
        )
        shown = client.get(f"/quarantine/{entries[1]}", headers=_auth(auditor)).json()
    assert shown["status"] == "PURGED"
    assert published == [retried.json()["job_id"]]
    assert (spool_dir / "incoming" / "held1").exists() and not (quarantine_dir / "held2").exists()
    with sessions() as session:
        steps = session.scalars(
            select(AuditEvent.detail).where(
                AuditEvent.object_type == "quarantine",
                AuditEvent.actor == steward.split(".")[0],
                AuditEvent.outcome == 0,
            )
        ).all()
    assert sum('"step":"retry"' in s for s in steps) == 1
    assert sum('"step":"purge"' in s for s in steps) == 1


def test_no_data_without_an_audit_record(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    """Rule: when the audit event cannot be written, the caller gets 503 and no catalog data."""
    _corpus(sessions)
    auditor = _auth(mint(sessions, "auditor"))
    assert client.get("/studies", headers=auditor).status_code == 200
    with sessions.begin() as session:
        session.execute(text("DELETE FROM audit_head"))
    response = client.get("/studies", headers=auditor)
    assert response.status_code == 503
    assert "2.25.1" not in response.text
