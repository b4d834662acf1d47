"""Server-side console sessions (table console_sessions, migration 0010_console_sessions):
the cookie is a random id, the catalog holds only its hash, and the session ends on
sign-out, at expiry, and with its token."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, select, update
from sqlalchemy.orm import Session, sessionmaker

from archive.api import create_app
from archive.catalog.migrate import alembic_config, upgrade
from archive.catalog.models_governance import ApiToken, ConsoleSessionRow, User
from archive.console.session import SESSION_COOKIE
from archive.governance.auth import revoke_token
from archive.work.jobs import utcnow
from tests.catalog.conftest import mint
from tests.console.test_console_http import sign_in
from tests.paths import PROFILES_DIR


@pytest.fixture()
def client(sessions: sessionmaker[Session], tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(sessions, profiles_dir=PROFILES_DIR, quarantine_dir=tmp_path / "q")
    with TestClient(app) as c:
        yield c


def _rows(sessions: sessionmaker[Session]) -> list[ConsoleSessionRow]:
    with sessions() as session:
        return list(session.scalars(select(ConsoleSessionRow)))


def _signed_in(client: TestClient) -> bool:
    answer = client.get("/console/", follow_redirects=False)
    return answer.status_code == 200


def test_cookie_is_a_random_id_stored_only_as_its_hash(
    sessions: sessionmaker[Session], client: TestClient
) -> None:
    """Rule: the session cookie carries no part of the token, and the catalog keeps only the
    SHA-256 of the session id (a copy of the database opens no session)."""
    token = mint(sessions, "auditor")
    sign_in(client, token)
    sid = client.cookies[SESSION_COOKIE]
    token_id, _, secret = token.partition(".")
    assert token_id not in sid and secret not in sid and sid not in token
    [row] = _rows(sessions)
    assert row.token_id == token_id
    assert row.sid_sha256 == hashlib.sha256(sid.encode()).hexdigest()
    assert sid not in row.sid_sha256
    # The hash as a cookie is no session.
    client.cookies.set(SESSION_COOKIE, row.sid_sha256, path="/console")
    assert not _signed_in(client)


def test_sign_out_ends_the_session_for_a_kept_cookie(
    sessions: sessionmaker[Session], client: TestClient
) -> None:
    """Rule: sign-out deletes the session: the same cookie, replayed, is refused."""
    csrf = sign_in(client, mint(sessions, "auditor"))
    sid = client.cookies[SESSION_COOKIE]
    out = client.post("/console/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert _rows(sessions) == []
    client.cookies.set(SESSION_COOKIE, sid, path="/console")
    assert not _signed_in(client)


def test_session_expires(sessions: sessionmaker[Session], client: TestClient) -> None:
    """Rule: a session stops working at its expiry, whatever the cookie's own max-age."""
    sign_in(client, mint(sessions, "auditor"))
    assert _signed_in(client)
    with sessions.begin() as session:
        session.execute(
            update(ConsoleSessionRow).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert not _signed_in(client)


@pytest.mark.parametrize("how", ["revoke", "disable", "expire"])
def test_session_ends_with_its_token(
    sessions: sessionmaker[Session], client: TestClient, how: str
) -> None:
    """Rule: a session is never worth more than its token: revoking the token, disabling
    its user or the token's own expiry ends the session at the next request."""
    token = mint(sessions, "steward")
    token_id = token.partition(".")[0]
    sign_in(client, token)
    assert _signed_in(client)
    with sessions.begin() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.token_id == token_id)).one()
        if how == "revoke":
            revoke_token(session, token_id)
        elif how == "disable":
            session.get_one(User, row.user_id).disabled_at = utcnow()
        else:
            row.expires_at = utcnow() - timedelta(seconds=1)
    assert not _signed_in(client)


def test_two_sign_ins_are_two_sessions(
    sessions: sessionmaker[Session], tmp_path: Path, client: TestClient
) -> None:
    """Rule: each sign-in gets its own id; signing out of one leaves the other working."""
    token = mint(sessions, "auditor")
    app = create_app(sessions, profiles_dir=PROFILES_DIR, quarantine_dir=tmp_path / "q")
    with TestClient(app) as other:
        csrf = sign_in(client, token)
        sign_in(other, token)
        assert client.cookies[SESSION_COOKIE] != other.cookies[SESSION_COOKIE]
        assert len(_rows(sessions)) == 2
        client.post("/console/logout", data={"csrf": csrf})
        assert _signed_in(other) and not _signed_in(client)


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migration_up_and_down(db_url: str) -> None:
    """Rule: every schema change has a migration that applies and reverts on SQLite and
    PostgreSQL."""
    assert "console_sessions" in _tables(db_url)
    command.downgrade(alembic_config(db_url), "0009_manufacturer")
    assert "console_sessions" not in _tables(db_url)
    upgrade(db_url)
    assert "console_sessions" in _tables(db_url)
