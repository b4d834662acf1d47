"""Admins in the console: register, disable and enable a source; add a user, mint a token
shown once, revoke it, disable a user. Each is the API's own step (same service
function, same audit event); refusals are shown on the page and recorded."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from archive import audit
from archive.api import create_app
from archive.catalog.models_governance import ApiToken, AuditEvent, Source, User
from archive.governance.sources import check_source
from tests.catalog.conftest import mint
from tests.console.test_console_http import sign_in
from tests.paths import PROFILES_DIR

MINTED = re.compile(r'<code id="minted-token">([^<]+)</code>')


@pytest.fixture()
def client(sessions: sessionmaker[Session], tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(sessions, profiles_dir=PROFILES_DIR)) as c:
        yield c


def _events(sessions: sessionmaker[Session]) -> list[AuditEvent]:
    with sessions() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def _allowed(sessions: sessionmaker[Session], ae: str, address: str) -> bool:
    with sessions() as session:
        return check_source(session, ae, address, open_when_empty=False).allowed


def test_admin_registers_disables_and_enables_a_source(
    sessions: sessionmaker[Session], client: TestClient
) -> None:
    """Rule: a source registered in the console is the receivers' gate at once; disabled,
    its associations are refused; enabled, accepted again. Each change is a Network
    Configuration security alert naming the AE title and the admin's token, like the
    API's."""
    token = mint(sessions, "admin")
    csrf = sign_in(client, token)
    form = {"csrf": csrf, "ae_title": "CHU_OUJDA", "address": "10.7.0.0/16", "site": "CHU Oujda"}
    before = len(_events(sessions))
    assert client.post("/console/sources", data=form).status_code == 200
    assert _allowed(sessions, "CHU_OUJDA", "10.7.1.2")
    for enabled, allowed in (("no", False), ("yes", True)):
        answer = client.post(
            "/console/sources/CHU_OUJDA/enabled", data={"csrf": csrf, "enabled": enabled}
        )
        assert answer.status_code == 200
        assert _allowed(sessions, "CHU_OUJDA", "10.7.1.2") is allowed
    changes = [e for e in _events(sessions)[before:] if e.object_type == "node"]
    assert [(e.event_type, e.action, e.object_id, e.actor) for e in changes] == [
        (audit.EventType.NETWORK_CONFIGURATION.value, a, "CHU_OUJDA", token.partition(".")[0])
        for a in (audit.Action.CREATE.value, audit.Action.UPDATE.value, audit.Action.UPDATE.value)
    ]


def test_refused_source_is_shown_and_recorded(
    sessions: sessionmaker[Session], client: TestClient
) -> None:
    """Rule: a change the service refuses (a malformed address) shows the reason on the
    page, stores nothing and leaves a failed event."""
    csrf = sign_in(client, mint(sessions, "admin"))
    before = len(_events(sessions))
    answer = client.post(
        "/console/sources", data={"csrf": csrf, "ae_title": "CHU_X", "address": "not-an-address"}
    )
    assert answer.status_code >= 400 and 'id="admin-refusal"' in answer.text
    with sessions() as session:
        assert session.scalars(select(Source)).first() is None
    [event] = [e for e in _events(sessions)[before:] if e.object_type == "node"]
    assert event.outcome != audit.Outcome.SUCCESS.value


def test_admin_adds_a_user_mints_a_token_once_and_revokes_it(
    sessions: sessionmaker[Session], client: TestClient
) -> None:
    """Rule: a user added in the console gets a token whose secret is shown on that one
    answer (not cached, not on the list afterwards) and works for the API; revoked with
    confirmation, it stops working; unconfirmed, nothing is revoked."""
    csrf = sign_in(client, mint(sessions, "admin"))
    assert (
        client.post(
            "/console/users", data={"csrf": csrf, "name": "nadia.auditor", "role": "auditor"}
        ).status_code
        == 200
    )
    minted = client.post(
        "/console/tokens", data={"csrf": csrf, "user": "nadia.auditor", "expires": "12h"}
    )
    assert minted.status_code == 200 and minted.headers["cache-control"] == "no-store"
    found = MINTED.search(minted.text)
    assert found is not None
    secret = found.group(1)
    token_id = secret.partition(".")[0]
    assert secret not in client.get("/console/users").text
    bearer = {"Authorization": f"Bearer {secret}"}
    assert client.get("/studies", headers=bearer).status_code == 200
    unconfirmed = client.post(f"/console/tokens/{token_id}/revoke", data={"csrf": csrf})
    assert unconfirmed.status_code == 422
    assert client.get("/studies", headers=bearer).status_code == 200
    revoked = client.post(
        f"/console/tokens/{token_id}/revoke", data={"csrf": csrf, "confirm": "yes"}
    )
    assert revoked.status_code == 200
    assert client.get("/studies", headers=bearer).status_code == 401
    with sessions() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.token_id == token_id)).one()
        assert row.revoked_at is not None and secret not in row.secret_sha256


def test_disabling_a_user_ends_their_console_session(
    sessions: sessionmaker[Session], tmp_path: Path, client: TestClient
) -> None:
    """Rule: a user disabled by an admin in the console is signed out of their own console
    session at their next click."""
    steward = mint(sessions, "steward", user="omar.steward")
    with TestClient(create_app(sessions, profiles_dir=PROFILES_DIR)) as other:
        sign_in(other, steward)
        csrf = sign_in(client, mint(sessions, "admin"))
        answer = client.post(
            "/console/users/omar.steward/disable", data={"csrf": csrf, "confirm": "yes"}
        )
        assert answer.status_code == 200
        with sessions() as session:
            user = session.scalars(select(User).where(User.name == "omar.steward")).one()
            assert user.disabled_at is not None
        assert other.get("/console/", follow_redirects=False).status_code == 303


def test_only_admins_change_sources_and_users(
    sessions: sessionmaker[Session], client: TestClient
) -> None:
    """Rule: an auditor reads the lists but every change answers 403 and changes nothing."""
    csrf = sign_in(client, mint(sessions, "auditor"))
    page = client.get("/console/users").text
    assert 'id="add-user"' not in page and 'id="mint-token"' not in page
    for path, data in (
        ("/console/sources", {"ae_title": "CHU_Y", "address": "10.8.0.0/16"}),
        ("/console/users", {"name": "someone", "role": "admin"}),
        ("/console/tokens", {"user": "someone"}),
    ):
        assert client.post(path, data={"csrf": csrf, **data}).status_code == 403, path
    with sessions() as session:
        assert session.scalars(select(Source)).first() is None
        assert session.scalars(select(User).where(User.name == "someone")).first() is None
