"""Profile propose refuses a profile below the floor (profiles/floor.yaml), over HTTP and on
the command line, naming the line; no version is stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from amana.cli_governance import propose, versions
from archive.api import create_app
from tests.catalog.conftest import mint
from tests.paths import REPO_ROOT

PROFILES = REPO_ROOT / "profiles"
# Keeps the patient's name and birth date: the new-user profile.
BELOW_FLOOR = (
    "name: site\n"
    "extends: ma-national\n"
    "attributes:\n"
    "  - {tag: \"(0010,0010)\", keyword: PatientName, action: K}\n"
    "  - {tag: \"(0010,0030)\", keyword: PatientBirthDate, action: K}\n"
)


@pytest.fixture()
def client(sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(create_app(sessions, profiles_dir=PROFILES)) as c:
        yield c


def test_propose_over_http_refuses_a_profile_below_the_floor(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    """Rule: POST /profiles with a profile keeping PatientName and PatientBirthDate is
    refused (422) with the line of the offending rule; nothing is stored."""
    steward = mint(sessions, "steward")
    headers = {"Authorization": f"Bearer {steward}"}
    response = client.post(
        "/profiles", headers=headers,
        files={"profile": ("site.yaml", BELOW_FLOOR.encode(), "text/yaml")},
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "line 4" in error and "PatientName" in error and "floor" in error
    assert client.get("/profiles", headers=headers).json() == []


def test_propose_on_the_cli_refuses_a_profile_below_the_floor(
    db_url: str, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: `amana profile propose` refuses the same profile with its line; `versions`
    lists nothing afterwards."""
    env = {"AMANA_DATABASE_URL": db_url, "AMANA_HOME": str(tmp_path / "home")}
    runner = CliRunner()
    steward = mint(sessions, "steward")
    app = typer.Typer()
    for command in (propose, versions):
        app.command(command.__name__)(command)
    file = tmp_path / "site.yaml"
    file.write_text(BELOW_FLOOR, encoding="utf-8")
    result = runner.invoke(
        app, ["propose", str(file), "--token", steward], env=env,
        terminal_width=300,
    )
    assert result.exit_code == 1, result.output
    assert "line 4" in result.output and "PatientName" in result.output
    listed = runner.invoke(app, ["versions", "--format", "json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == []


def test_the_floor_itself_is_not_proposed(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    """Rule: a profile named `floor` cannot be proposed: the floor ships with Amana and is
    not lowered by stewards' votes."""
    steward = mint(sessions, "steward")
    headers = {"Authorization": f"Bearer {steward}"}
    text = "name: floor\nattributes: []\n"
    response = client.post(
        "/profiles", headers=headers,
        files={"profile": ("floor.yaml", text.encode(), "text/yaml")},
    )
    assert response.status_code == 422, response.text
    assert "floor" in response.json()["error"]
    assert client.get("/profiles", headers=headers).json() == []
