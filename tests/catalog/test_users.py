"""People, not tokens: tokens belong to named users, expire, and four eyes counts users."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from amana.cli_governance import activate, approve, propose
from amana.cli_tokens import token_app
from amana.cli_users import user_app
from anonymizer.errors import RejectError
from archive.api import create_app
from archive.catalog.models_governance import ApiToken, ProfileApproval
from archive.governance.auth import parse_lifetime
from archive.work.jobs import utcnow
from tests.catalog.conftest import audit_events, mint, person, revised_national_profile, run_cli
from tests.paths import REPO_ROOT

PROFILES = REPO_ROOT / "profiles"
profile_app = typer.Typer()
for _command in (propose, approve, activate):
    profile_app.command(_command.__name__)(_command)


@pytest.fixture()
def client(sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(create_app(sessions, profiles_dir=PROFILES)) as c:
        yield c


@pytest.fixture()
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return {"AMANA_DATABASE_URL": db_url, "AMANA_HOME": str(tmp_path / "home")}


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _propose(client: TestClient, token: str, tmp_path: Path) -> str:
    body = revised_national_profile(tmp_path).read_bytes()
    response = client.post(
        "/profiles", headers=_h(token), files={"profile": ("p.yaml", body, "text/yaml")}
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["version"])


def test_one_person_with_two_steward_tokens_is_still_one_pair_of_eyes(
    client: TestClient, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: four eyes counts users, not tokens. An admin mints two steward tokens for one
    person; proposing with one and approving with the other is refused (409) and audited,
    and the version cannot be activated; a second steward user's approval then lets it."""
    admin = mint(sessions, "admin")
    person(sessions, "alice", "steward")
    first, second = (
        client.post("/tokens", headers=_h(admin), json={"user": "alice"}).json()["token"]
        for _ in range(2)
    )
    version = _propose(client, first, tmp_path)
    before = len(audit_events(sessions))
    refused = client.post(f"/profiles/{version}/approve", headers=_h(second))
    assert refused.status_code == 409, refused.text
    added = audit_events(sessions)[before:]
    assert len(added) == 1 and added[0].outcome == 4
    assert added[0].actor == second.split(".")[0] and "proposer cannot approve" in added[0].detail
    with sessions() as session:
        assert session.scalar(select(ProfileApproval.id)) is None
    assert client.post(f"/profiles/{version}/activate", headers=_h(second)).status_code == 409

    bob = mint(sessions, "steward")
    assert client.post(f"/profiles/{version}/approve", headers=_h(bob)).status_code == 200
    activated = client.post(f"/profiles/{version}/activate", headers=_h(second))
    assert activated.status_code == 200 and activated.json()["status"] == "ACTIVE"


def test_admin_takes_no_part_in_profiles_and_reads_no_catalog(
    client: TestClient, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: an admin token cannot propose, approve or activate a profile, nor read studies,
    statistics or quarantine (403 each, audited as use of a restricted function)."""
    admin, steward = mint(sessions, "admin"), mint(sessions, "steward")
    version = _propose(client, steward, tmp_path)
    body = revised_national_profile(tmp_path).read_bytes()
    calls = [
        ("POST", "/profiles", {"files": {"profile": ("p.yaml", body, "text/yaml")}}),
        ("POST", f"/profiles/{version}/approve", {}),
        ("POST", f"/profiles/{version}/activate", {}),
        ("GET", "/studies", {}),
        ("GET", "/statistics", {}),
        ("GET", "/quarantine", {}),
    ]
    for method, url, extra in calls:
        before = len(audit_events(sessions))
        response = client.request(method, url, headers=_h(admin), **extra)  # type: ignore[arg-type]
        assert response.status_code == 403, (url, response.text)
        (event,) = audit_events(sessions)[before:]
        assert (event.event_id, event.event_type, event.actor_role) == ("110113", "110132", "admin")


def test_admin_cannot_give_themselves_a_role(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    """Rule: a token carries its user's role. An admin cannot mint a token for themselves
    with another role, nor change their own role (403); for someone else a role other than
    the user's is refused (409); only an admin adds users over HTTP."""
    admin = mint(sessions, "admin", user="root")
    steward = mint(sessions, "steward")
    for role in ("steward", "auditor"):
        own = client.post("/tokens", headers=_h(admin), json={"user": "root", "role": role})
        assert own.status_code == 403, own.text
    assert (
        client.put("/users/root/role", headers=_h(admin), json={"role": "steward"}).status_code
        == 403
    )
    same = client.post("/tokens", headers=_h(admin), json={"user": "root", "role": "admin"})
    assert same.status_code == 201 and same.json()["role"] == "admin"

    added = client.post("/users", headers=_h(admin), json={"name": "carol", "role": "auditor"})
    assert added.status_code == 201 and added.json()["role"] == "auditor"
    assert (
        client.post(
            "/users", headers=_h(admin), json={"name": "carol", "role": "admin"}
        ).status_code
        == 409
    )
    other = client.post("/tokens", headers=_h(admin), json={"user": "carol", "role": "steward"})
    assert other.status_code == 409
    minted = client.post("/tokens", headers=_h(admin), json={"user": "carol"}).json()
    assert minted["role"] == "auditor"
    assert client.get("/studies", headers=_h(minted["token"])).status_code == 200
    assert (
        client.post(
            "/users", headers=_h(steward), json={"name": "eve", "role": "admin"}
        ).status_code
        == 403
    )

    # A role change reaches every token of the user at once: no token out-ranks its user.
    changed = client.put("/users/carol/role", headers=_h(admin), json={"role": "steward"})
    assert changed.status_code == 200
    assert client.get("/studies", headers=_h(minted["token"])).status_code == 403


def test_expired_and_disabled_tokens_are_refused_and_audited(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    """Rule: a token past its expiry, or one whose user is disabled, is answered 401 and the
    refusal is recorded as a failed User Authentication with the token id as actor."""
    auditor, admin = mint(sessions, "auditor", user="ethics"), mint(sessions, "admin")
    assert client.get("/studies", headers=_h(auditor)).status_code == 200
    token_id = auditor.split(".")[0]
    with sessions.begin() as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.token_id == token_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert client.get("/studies", headers=_h(auditor)).status_code == 401
    event = audit_events(sessions)[-1]
    assert (event.event_id, event.outcome, event.actor) == ("110114", 4, token_id)

    fresh = mint(sessions, "auditor", user="ethics")
    assert client.get("/studies", headers=_h(fresh)).status_code == 200
    assert client.post("/users/ethics/disable", headers=_h(admin)).status_code == 200
    # From another address: a second failure from the first one in the same minute would go
    # into that address's per-minute summary instead (archive/api/clients.py).
    with TestClient(client.app, client=("192.0.2.9", 50000)) as other:
        assert other.get("/studies", headers=_h(fresh)).status_code == 401
    event = audit_events(sessions)[-1]
    assert (event.event_id, event.actor) == ("110114", fresh.split(".")[0])
    assert client.post("/tokens", headers=_h(admin), json={"user": "ethics"}).status_code == 409


def test_auditors_turn_actors_into_people(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    """Rule: an auditor lists users and tokens (holder, role, expiry, last use, never a
    secret), each list an audited Query; a token's use is noted on authentication."""
    auditor = mint(sessions, "auditor", user="ethics")
    steward = mint(sessions, "steward", user="alice")
    assert client.get("/quarantine", headers=_h(steward)).status_code == 200
    tokens = client.get("/tokens", headers=_h(auditor))
    assert tokens.status_code == 200
    by_id = {t["token_id"]: t for t in tokens.json()}
    used = by_id[steward.split(".")[0]]
    assert used["user"] == "alice" and used["role"] == "steward" and used["last_used_at"]
    assert used["expires_at"] and not used["expired"] and steward.split(".")[1] not in tokens.text
    users = client.get("/users", headers=_h(auditor)).json()
    assert {u["name"]: u["role"] for u in users} == {"ethics": "auditor", "alice": "steward"}
    assert [e.object_type for e in audit_events(sessions)[-2:]] == ["token", "user"]
    assert (
        client.post("/users", headers=_h(auditor), json={"name": "x", "role": "admin"}).status_code
        == 403
    )


def test_token_lifetimes() -> None:
    """Rule: `--expires` takes Nd or Nh, 90 days by default, never more than a year."""
    assert parse_lifetime(None) == timedelta(days=90)
    assert parse_lifetime("12h") == timedelta(hours=12)
    assert parse_lifetime("30d") == timedelta(days=30)
    for bad in ("400d", "0d", "3w", "abc", "-1d"):
        with pytest.raises(RejectError):
            parse_lifetime(bad)


def test_four_eyes_on_the_cli_counts_people(
    env: dict[str, str], sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: on the command line too, one user's second token cannot approve that user's
    proposal (refused, one failure event); the first admin is made without any token; a
    second steward user's approval lets the version activate."""
    assert "added root" in run_cli(user_app, ["add", "root", "--role", "admin"], env)
    run_cli(user_app, ["add", "alice", "--role", "steward"], env)
    first, second = (
        run_cli(token_app, ["create", "--user", "alice", "--expires", "7d"], env).strip()
        for _ in range(2)
    )
    revised = revised_national_profile(tmp_path)
    out = run_cli(profile_app, ["propose", str(revised), "--token", first], env)
    version = out.split(" version ")[1].split()[0]
    before = len(audit_events(sessions))
    run_cli(profile_app, ["approve", version, "--token", second], env, code=1)
    (event,) = audit_events(sessions)[before:]
    assert event.outcome == 4 and event.actor == second.split(".")[0]
    run_cli(profile_app, ["activate", version, "--token", second], env, code=1)

    run_cli(user_app, ["add", "bob", "--role", "steward"], env)
    bob = run_cli(token_app, ["create", "--user", "bob"], env).strip()
    run_cli(profile_app, ["approve", version, "--token", bob], env)
    assert "now active" in run_cli(profile_app, ["activate", version, "--token", first], env)
    run_cli(token_app, ["create", "--user", "bob", "--expires", "999d"], env, code=1)
    run_cli(user_app, ["disable", "bob"], env)
    run_cli(profile_app, ["approve", version, "--token", bob], env, code=1)
    listed = run_cli(user_app, ["list", "--format", "json"], env)
    assert '"name": "bob"' in listed and '"disabled": true' in listed


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def old_catalog(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A catalog at revision 0002 (tokens without users)."""
    from archive.catalog.migrate import upgrade

    url = (
        f"sqlite:///{tmp_path / 'old.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    upgrade(url, "0002")
    return url


def test_migration_gives_every_existing_token_a_user(old_catalog: str) -> None:
    """Rule: migrating a catalog with tokens makes one user per token, named after its label
    (its id when the label is missing, malformed or taken), with the token's role and an
    expiry; the tokens keep working; a downgrade gives the tokens their roles back."""
    from alembic import command

    from archive.catalog.db import make_engine, make_sessionmaker
    from archive.catalog.migrate import alembic_config, upgrade
    from archive.governance.auth import _sha256 as sha256
    from archive.governance.auth import authenticate

    rows = [
        ("tok_00000000000a", "steward", "alice"),
        ("tok_00000000000b", "steward", "alice"),
        ("tok_00000000000c", "auditor", None),
        ("tok_00000000000d", "admin", "not a name!"),
    ]
    engine = make_engine(old_catalog)
    with engine.begin() as conn:
        for token_id, role, label in rows:
            conn.execute(
                text(
                    "INSERT INTO api_tokens (token_id, secret_sha256, role, label, created_by)"
                    " VALUES (:t, :s, :r, :l, 'test')"
                ),
                # Stored as the model stores it: the enum's name.
                {"t": token_id, "s": sha256("s" + token_id), "r": role.upper(), "l": label},
            )
    upgrade(old_catalog)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        seen = {tid: authenticate(session, f"{tid}.s{tid}") for tid, _, _ in rows}
    assert {tid: (p.user, p.role.value) for tid, p in seen.items()} == {
        "tok_00000000000a": ("alice", "steward"),
        "tok_00000000000b": ("tok_00000000000b", "steward"),
        "tok_00000000000c": ("tok_00000000000c", "auditor"),
        "tok_00000000000d": ("tok_00000000000d", "admin"),
    }
    with sessions() as session:
        expiries = session.scalars(select(ApiToken.expires_at)).all()
    assert len(expiries) == 4 and all(e is not None for e in expiries)

    command.downgrade(alembic_config(old_catalog), "0002")
    with engine.connect() as conn:
        found = conn.execute(text("SELECT token_id, role FROM api_tokens")).all()
    roles: dict[str, str] = {str(row[0]): str(row[1]) for row in found}
    assert roles == {tid: role.upper() for tid, role, _ in rows}
    engine.dispose()
