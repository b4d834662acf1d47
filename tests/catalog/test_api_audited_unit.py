"""The API's audited unit of work: a change and its audit event are committed together, each
request is recorded once, and /openapi.json documents every answer. Real SQLite and
PostgreSQL catalogs (the `sessions` fixture), through httpx (TestClient)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from archive.api import create_app
from archive.catalog.models import Job, JobStatus, QuarantineEntry, QuarantineStatus
from archive.catalog.models_governance import ApiToken, AuditEvent, Source
from tests.catalog.conftest import add_instance, hold, mint, person
from tests.paths import PROFILES_DIR


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _count(sessions: sessionmaker[Session], model: type[object]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _drop_audit_head(sessions: sessionmaker[Session]) -> None:
    # Without its head row the chain refuses every append (archive.audit.chain.append).
    with sessions.begin() as session:
        session.execute(text("DELETE FROM audit_head"))


def test_no_change_survives_a_failed_audit_append(sessions: sessionmaker[Session]) -> None:
    """Rule: a change and its audit event are one transaction. With the audit head row gone,
    POST /sources and POST /tokens answer 503 and no source and no token was stored."""
    admin = _auth(mint(sessions, "admin"))
    person(sessions, "ethics", "auditor")
    sources_before, tokens_before = _count(sessions, Source), _count(sessions, ApiToken)
    _drop_audit_head(sessions)
    with TestClient(create_app(sessions, profiles_dir=PROFILES_DIR)) as client:
        added = client.post(
            "/sources", headers=admin, json={"ae_title": "CHU_FES", "address": "10.9.0.1"}
        )
        minted = client.post("/tokens", headers=admin, json={"user": "ethics"})
    assert added.status_code == 503 and minted.status_code == 503
    assert "token" not in minted.json()
    assert _count(sessions, Source) == sources_before
    assert _count(sessions, ApiToken) == tokens_before


def test_no_retry_or_purge_survives_a_failed_audit_append(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: a quarantine retry or purge whose audit event cannot be written answers 503,
    leaves the entry HELD and its job QUARANTINED, and sends nothing to the queue."""
    quarantine_dir, spool_dir = tmp_path / "quarantine", tmp_path / "spool"
    quarantine_dir.mkdir()
    (spool_dir / "incoming").mkdir(parents=True)
    retried, purged = (hold(sessions, quarantine_dir, n) for n in ("held1", "held2"))
    steward = _auth(mint(sessions, "steward"))
    published: list[int] = []
    app = create_app(
        sessions,
        profiles_dir=PROFILES_DIR,
        quarantine_dir=quarantine_dir,
        spool_dir=spool_dir,
        publish=published.extend,
    )
    _drop_audit_head(sessions)
    with TestClient(app) as client:
        assert client.post(f"/quarantine/{retried}/retry", headers=steward).status_code == 503
        assert client.post(f"/quarantine/{purged}/purge", headers=steward).status_code == 503
    assert published == []
    with sessions() as session:
        entries = session.scalars(select(QuarantineEntry).order_by(QuarantineEntry.id)).all()
        assert {e.status for e in entries} == {QuarantineStatus.HELD}
        jobs = session.scalars(select(Job.status)).all()
        assert set(jobs) == {JobStatus.QUARANTINED}


def test_each_request_is_recorded_exactly_once(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: every audited request leaves exactly one event — a read, a change, a refused
    change, a steward's retry (once, with the queue told after the commit), an approval
    refused by the four-eyes rule."""
    add_instance(sessions, study="2.25.1", series="2.25.1.1", sop="2.25.1.1.1")
    quarantine_dir, spool_dir = tmp_path / "quarantine", tmp_path / "spool"
    quarantine_dir.mkdir()
    (spool_dir / "incoming").mkdir(parents=True)
    entry = hold(sessions, quarantine_dir, "held1")
    auditor, admin, steward = (_auth(mint(sessions, r)) for r in ("auditor", "admin", "steward"))
    person(sessions, "ethics", "auditor")
    published: list[int] = []
    app = create_app(
        sessions,
        profiles_dir=PROFILES_DIR,
        quarantine_dir=quarantine_dir,
        spool_dir=spool_dir,
        publish=published.extend,
    )
    source = {"ae_title": "CHU_OUJDA", "address": "10.7.0.0/16"}
    calls = [
        ("GET", "/studies", auditor, None, 200),
        ("GET", "/studies/2.25.1", auditor, None, 200),
        ("POST", "/sources", admin, source, 201),
        ("POST", "/sources", admin, source, 409),
        ("DELETE", "/sources/CHU_OUJDA", admin, None, 204),
        ("POST", "/tokens", admin, {"user": "ethics"}, 201),
        ("POST", f"/quarantine/{entry}/retry", steward, None, 200),
        ("POST", f"/quarantine/{entry}/retry", steward, None, 409),
        ("POST", "/profiles/no-such-version/approve", steward, None, 404),
    ]
    with TestClient(app) as client:
        for method, url, headers, body, status in calls:
            before = _count(sessions, AuditEvent)
            response = client.request(method, url, headers=headers, json=body)
            assert response.status_code == status, (url, response.text)
            assert _count(sessions, AuditEvent) == before + 1, (method, url, status)
            with sessions() as session:
                last = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
            assert last is not None and f'"status":{status}' in last.detail, (url, last.detail)
            if method == "POST" and url.endswith("/retry") and status == 200:
                assert response.json()["queued"] is True
                assert published == [response.json()["job_id"]]
    assert len(published) == 1


def test_openapi_documents_every_answer(sessions: sessionmaker[Session]) -> None:
    """Rule: /openapi.json gives every route a success answer with a schema (JSON model,
    CSV or text), except the deletions whose answer is 204 with no body."""
    with TestClient(create_app(sessions, profiles_dir=PROFILES_DIR)) as client:
        spec = client.get("/openapi.json").json()
    operations = [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert len(operations) >= 20
    for path, method, op in operations:
        answers = op["responses"]
        success = [code for code in answers if code.startswith("2")]
        assert len(success) == 1, (method, path, answers)
        code = success[0]
        if code == "204":
            assert method == "delete" and not answers[code].get("content"), (method, path)
            continue
        assert code in {"200", "201"}, (method, path)
        content = answers[code]["content"]
        for media, body in content.items():
            assert body.get("schema"), (method, path, media)
        schema = content["application/json"]["schema"]
        assert "$ref" in schema or schema.get("type") == "array", (method, path, schema)
        if schema.get("type") == "array":
            assert "$ref" in schema["items"], (method, path)
