"""Integers past the database's range answer 4xx, never 500 (issue 14.7): every HTTP route
with an integer path or query parameter, and the command line's integer arguments."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from amana.cli_catalog import audit_app, catalog_app
from amana.cli_quarantine import quarantine_app
from archive.api import create_app
from tests.catalog.conftest import mint
from tests.paths import PROFILES_DIR

HUGE = "99999999999999999999"  # > 2**64
EDGE = str(2**63)  # one past BIGINT
IN_RANGE = str(2**63 - 1)  # the largest a BIGINT holds: names nothing, so 404


def _integer_params(app: Any) -> Iterator[tuple[str, str, str, list[str]]]:
    """(method, path template, where, names) for each operation with integer parameters,
    read from the app's own OpenAPI description so a new route is covered by itself."""
    for path, operations in app.openapi()["paths"].items():
        for method, op in operations.items():
            params = op.get("parameters", [])
            ints = [
                p
                for p in params
                if p["schema"].get("type") == "integer"
                or any(s.get("type") == "integer" for s in p["schema"].get("anyOf", []))
            ]
            for where in ("path", "query"):
                names = [p["name"] for p in ints if p["in"] == where]
                if names:
                    yield method.upper(), path, where, names


@pytest.fixture()
def client(sessions: sessionmaker[Session], tmp_path: Any) -> Iterator[TestClient]:
    app = create_app(
        sessions,
        profiles_dir=PROFILES_DIR,
        quarantine_dir=tmp_path / "q",
        spool_dir=tmp_path / "spool",
    )
    with TestClient(app) as c:
        yield c


def test_every_integer_parameter_refuses_oversized_values(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    """Rule: on every route, an integer path or query parameter past 2**63-1 answers 4xx
    for every role, and the largest in-range id that names nothing answers 404."""
    tokens = [mint(sessions, role) for role in ("auditor", "steward", "admin")]
    found = list(_integer_params(client.app))
    paths_with_ids = {path for _, path, where, _ in found if where == "path"}
    assert {"/quarantine/{entry_id}", "/quarantine/{entry_id}/purge"} <= paths_with_ids
    for method, path, where, names in found:
        for value in (HUGE, EDGE, "-" + HUGE):
            url, params = path, {}
            for name in names:
                if where == "path":
                    url = url.replace("{" + name + "}", value)
                else:
                    params[name] = value
            for token in tokens:
                answer = client.request(
                    method, url, params=params, headers={"Authorization": f"Bearer {token}"}
                )
                assert 400 <= answer.status_code < 500, (method, url, params, answer.text)
    for token in tokens[:2]:
        answer = client.get(
            f"/quarantine/{IN_RANGE}", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code in (403, 404), answer.text
    auditor = {"Authorization": f"Bearer {tokens[0]}"}
    assert client.get(f"/quarantine/{IN_RANGE}", headers=auditor).status_code == 404
    assert client.get("/studies", params={"offset": IN_RANGE}, headers=auditor).status_code == 200


@pytest.mark.parametrize(
    ("app", "args"),
    [
        (quarantine_app, ["show", HUGE]),
        (quarantine_app, ["purge", HUGE, "--yes"]),
        (quarantine_app, ["release", EDGE, "--to", "/nonexistent"]),
        (catalog_app, ["studies", "--offset", HUGE]),
        (audit_app, ["search", "--before", HUGE]),
    ],
)
def test_command_line_integers_are_bounded(
    db_url: str, tmp_path: Any, app: Any, args: list[str]
) -> None:
    """Rule: the command line refuses an integer past the database's range as a bad
    argument (exit 2, a message), not with a traceback from the driver."""
    env = {"AMANA_DATABASE_URL": db_url, "AMANA_HOME": str(tmp_path / "home")}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
