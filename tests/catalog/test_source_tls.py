"""Sources bound to a client certificate: the binding is checked at association, kept in
the catalog (migration 0005), and set through the API and the command line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from anonymizer.errors import RejectError
from archive.api import create_app
from archive.catalog.migrate import upgrade
from archive.catalog.models_governance import AuditEvent
from archive.governance.sources import (
    PLAIN_TCP,
    PeerTls,
    SourceGate,
    add_source,
    check_source,
    edit_source,
)
from tests.catalog.conftest import mint
from tests.paths import PROFILES_DIR
from tests.support.pki import TestCA

PINNED = hashlib.sha256(b"the certificate CHU_RABAT was issued").hexdigest()
OTHER = hashlib.sha256(b"another certificate of the same CA").hexdigest()


def _tls(sha256: str | None, *names: str) -> PeerTls:
    return PeerTls(over_tls=True, sha256=sha256, common_names=names)


def test_bound_source_needs_its_certificate_over_tls(sessions: sessionmaker[Session]) -> None:
    """Rule: a source bound to a fingerprint is accepted only over TLS with exactly that
    certificate; an unbound source is accepted over plain TCP and TLS alike."""
    with sessions.begin() as session:
        add_source(session, ae_title="CHU_RABAT", address="10.20.0.0/16", cert_sha256=PINNED)
        add_source(session, ae_title="CHU_FES", address="10.30.0.0/16")
    with sessions() as session:

        def check(ae: str, address: str, tls: PeerTls) -> tuple[bool, str]:
            decision = check_source(session, ae, address, open_when_empty=False, tls=tls)
            return decision.allowed, decision.reason

        assert check("CHU_RABAT", "10.20.1.1", _tls(PINNED, "rabat-pacs"))[0]
        plain = check("CHU_RABAT", "10.20.1.1", PLAIN_TCP)
        assert not plain[0] and "TLS" in plain[1]
        wrong = check("CHU_RABAT", "10.20.1.1", _tls(OTHER, "rabat-pacs"))
        assert not wrong[0] and "certificate" in wrong[1]
        none = check("CHU_RABAT", "10.20.1.1", _tls(None))
        assert not none[0] and "no client certificate" in none[1]
        # The certificate does not replace the address rule: both must hold.
        assert not check("CHU_RABAT", "10.99.1.1", _tls(PINNED))[0]
        assert check("CHU_FES", "10.30.1.1", PLAIN_TCP)[0]
        assert check("CHU_FES", "10.30.1.1", _tls(OTHER, "anyone"))[0]


def test_common_name_binding(sessions: sessionmaker[Session]) -> None:
    """Rule: a source bound to a subject CN accepts any certificate (of the trusted CA)
    carrying that CN and no other; bound to both, both must match."""
    with sessions.begin() as session:
        add_source(session, ae_title="CHU_OUJDA", address="10.40.0.0/16", cert_cn="pacs.oujda")
        add_source(
            session,
            ae_title="CHU_TANGER",
            address="10.50.0.0/16",
            cert_cn="pacs.tanger",
            cert_sha256=PINNED,
        )
    with sessions() as session:

        def allowed(ae: str, address: str, tls: PeerTls) -> bool:
            return check_source(session, ae, address, open_when_empty=False, tls=tls).allowed

        assert allowed("CHU_OUJDA", "10.40.0.9", _tls(OTHER, "pacs.oujda"))
        assert allowed("CHU_OUJDA", "10.40.0.9", _tls(PINNED, "pacs.oujda"))
        assert not allowed("CHU_OUJDA", "10.40.0.9", _tls(OTHER, "pacs.other"))
        assert not allowed("CHU_OUJDA", "10.40.0.9", _tls(OTHER, "PACS.OUJDA"))
        assert allowed("CHU_TANGER", "10.50.0.9", _tls(PINNED, "pacs.tanger"))
        assert not allowed("CHU_TANGER", "10.50.0.9", _tls(OTHER, "pacs.tanger"))
        assert not allowed("CHU_TANGER", "10.50.0.9", _tls(PINNED, "pacs.other"))


def test_loopback_waiver_does_not_lift_a_certificate_binding(
    sessions: sessionmaker[Session],
) -> None:
    """Rule: `amana run`'s loopback waiver admits unknown senders, never a registered
    source that fails its own certificate binding; the refusal is audited."""
    with sessions.begin() as session:
        add_source(session, ae_title="CHU_AGADIR", address="127.0.0.1", cert_sha256=PINNED)
    gate = SourceGate(sessions, open_when_empty=False)
    assert gate.check("STRANGER", "127.0.0.1", waive_unknown=True).allowed
    refused = gate.check("CHU_AGADIR", "127.0.0.1", waive_unknown=True, tls=_tls(OTHER))
    assert not refused.allowed and not refused.transient
    assert gate.check("CHU_AGADIR", "127.0.0.1", waive_unknown=True, tls=_tls(PINNED)).allowed
    with sessions() as session:
        alerts = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.object_id == "CHU_AGADIR")
        ).all()
    assert any("registered for this AE title" in d for d in alerts)


def test_fingerprint_forms_and_bad_values(sessions: sessionmaker[Session]) -> None:
    """Rule: a fingerprint is stored in one form whatever way it was pasted (openssl's
    colon-separated upper case, with its prefix, or bare hex); anything else is refused, as
    is a CN that could not be logged safely; an empty text clears the binding."""
    openssl_form = "sha256 Fingerprint=" + ":".join(
        PINNED[i : i + 2].upper() for i in range(0, 64, 2)
    )
    with sessions.begin() as session:
        src = add_source(
            session,
            ae_title="CHU_SAFI",
            address="10.60.0.1",
            cert_sha256=openssl_form.split("Fingerprint=")[1],
        )
        assert src.cert_sha256 == PINNED
        for bad in ("abc", PINNED[:-1] + "g", "sha1:" + PINNED):
            with pytest.raises(RejectError):
                edit_source(session, "CHU_SAFI", PROFILES_DIR, cert_sha256=bad)
        with pytest.raises(RejectError):
            edit_source(session, "CHU_SAFI", PROFILES_DIR, cert_cn="line\nbreak")
        _, changes = edit_source(session, "CHU_SAFI", PROFILES_DIR, cert_sha256="")
        assert changes == {"cert_sha256": [PINNED, None]}
        assert src.cert_sha256 is None


def test_api_binds_a_source_to_a_certificate(sessions: sessionmaker[Session]) -> None:
    """Rule: an admin binds and unbinds a source's certificate over the API (PATCH), the
    change is audited with the old and new value, and a malformed fingerprint is a 422."""
    token = mint(sessions, "admin")
    h = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(sessions, profiles_dir=PROFILES_DIR)) as client:
        created = client.post(
            "/sources", headers=h, json={"ae_title": "CHU_MEKNES", "address": "10.70.0.0/16"}
        )
        assert created.status_code == 201 and created.json()["cert_sha256"] is None
        patched = client.patch(
            "/sources/CHU_MEKNES", headers=h, json={"cert_sha256": PINNED, "cert_cn": "pacs.mk"}
        )
        assert patched.status_code == 200, patched.text
        assert (patched.json()["cert_sha256"], patched.json()["cert_cn"]) == (PINNED, "pacs.mk")
        bad = client.patch("/sources/CHU_MEKNES", headers=h, json={"cert_sha256": "xyz"})
        assert bad.status_code == 422
        listed = client.get("/sources", headers=h).json()
        assert listed[0]["cert_sha256"] == PINNED
    with sessions() as session:
        details = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.object_id == "CHU_MEKNES")
        ).all()
    changes = [json.loads(d).get("changes", {}) for d in details]
    assert {"cert_sha256": [None, PINNED], "cert_cn": [None, "pacs.mk"]} in changes


def test_cli_binds_the_fingerprint_of_a_pem_file(tmp_path: Path) -> None:
    """Rule: `amana sources add --cert-file` binds the SHA-256 of the certificate's DER
    encoding, the value the receiver computes from the peer's certificate."""
    from amana.cli import app

    ca = TestCA(tmp_path / "pki")
    client = ca.issue("pacs", "pacs.kenitra")
    (tmp_path / "home").mkdir()
    env = {"AMANA_HOME": str(tmp_path / "home"), "AMANA_PROFILES_DIR": str(PROFILES_DIR)}
    upgrade(f"sqlite:///{tmp_path / 'home' / 'catalog.db'}")
    runner = CliRunner()
    added = runner.invoke(
        app,
        ["sources", "add", "CHU_KENITRA", "10.80.0.1", "--cert-file", str(client.cert)],
        env=env,
    )
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["sources", "list", "--format", "json"], env=env)
    assert json.loads(listed.stdout)[0]["cert_sha256"] == client.sha256
    not_pem = runner.invoke(
        app, ["sources", "edit", "CHU_KENITRA", "--cert-file", str(client.key)], env=env
    )
    assert not_pem.exit_code != 0


def test_migration_0005_adds_and_removes_the_binding(tmp_path: Path) -> None:
    """Rule: 0005 adds the two nullable columns (existing sources stay unbound) and its
    downgrade removes them, on SQLite whose `sources` table jobs reference."""
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    upgrade(url, revision="0004_source_profiles")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO sources (ae_title, address, enabled) VALUES ('OLD_PACS', '10.0.0.1/32', 1)"
        )
    upgrade(url)
    columns = {c["name"] for c in inspect(engine).get_columns("sources")}
    assert {"cert_sha256", "cert_cn"} <= columns
    with engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT cert_sha256, cert_cn FROM sources").one()
    assert tuple(row) == (None, None)
    from alembic import command

    from archive.catalog.migrate import alembic_config

    command.downgrade(alembic_config(url), "0004_source_profiles")
    engine.dispose()
    columns = {c["name"] for c in inspect(create_engine(url)).get_columns("sources")}
    assert not {"cert_sha256", "cert_cn"} & columns
