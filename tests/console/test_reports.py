"""The auditors' question (who sent how many studies, under which profile version, what
was quarantined and why) answered alike by the function, GET /reports and the CLI."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from amana.cli_catalog import catalog_app
from anonymizer.errors import RejectError
from archive.api import create_app
from archive.catalog import reports, search
from tests.catalog.conftest import mint
from tests.console.conftest import Seeded, seed
from tests.paths import PROFILES_DIR


@pytest.fixture()
def seeded(sessions: sessionmaker[Session], tmp_path: Path) -> Seeded:
    return seed(sessions, tmp_path / "quarantine")


def _totals(result: dict[str, object]) -> dict[str, tuple[int, int, int]]:
    return {
        row["source"]: (row["studies"], row["instances"], row["quarantined"])  # type: ignore[index]
        for row in result["by_source"]  # type: ignore[attr-defined]
    }


def _expected(seeded: Seeded) -> dict[str, tuple[int, int, int]]:
    labels = set(seeded.studies) | set(seeded.quarantined)
    return {
        label: (
            len(seeded.studies.get(label, set())),
            seeded.instances.get(label, 0),
            sum(seeded.quarantined.get(label, {}).values()),
        )
        for label in labels
    }


def test_week_report_counts_each_study_once(
    sessions: sessionmaker[Session], seeded: Seeded
) -> None:
    """Rule: per source, a study received over several days is one study of its week;
    instances and quarantines add up to what was sent."""
    with sessions() as session:
        result = reports.report(session, reports.ReportFilter(period="week"))
    assert _totals(result) == _expected(seeded)
    rabat_weeks = [r for r in result["archived"] if r["source"].startswith("CHU_RABAT")]
    assert {r["period"] for r in rabat_weeks} == {"2026-W48"}
    per_version = {r["profile_version"]: (r["studies"], r["instances"]) for r in rabat_weeks}
    assert per_version == {"v1": (1, 3), "v2": (1, 1)}
    reasons = {(r["source"], r["reason"]): r["count"] for r in result["quarantined"]}
    expected_reasons = {
        (label, reason): n
        for label, by_reason in seeded.quarantined.items()
        for reason, n in by_reason.items()
    }
    assert reasons == expected_reasons


def test_days_split_and_filters_narrow(sessions: sessionmaker[Session], seeded: Seeded) -> None:
    """Rule: per day the same study appears on each day it arrived; a source filter and a
    date window keep only what matches."""
    with sessions() as session:
        days = reports.report(session, reports.ReportFilter(period="day", source="CHU_RABAT"))
        first_day = reports.report(
            session, reports.ReportFilter("2026-11-23", "2026-11-23", period="day")
        )
        studies = search.search_studies(session, search.StudyFilter(source="CHU_RABAT"), limit=100)
        in_window = search.search_studies(
            session, search.StudyFilter(received_from="2026-11-26", received_to="2026-11-30")
        )
    assert {r["source"] for r in days["archived"]} == {"CHU_RABAT (CHU Rabat)"}
    assert sorted((r["period"], r["studies"]) for r in days["archived"]) == [
        ("2026-11-23", 1),
        ("2026-11-24", 1),
        ("2026-11-25", 1),
    ]
    assert _totals(first_day) == {"CHU_RABAT (CHU Rabat)": (1, 2, 0)}
    assert {s["study_uid"] for s in studies} == seeded.studies["CHU_RABAT (CHU Rabat)"]
    assert {s["study_uid"] for s in in_window} == seeded.studies["(unregistered) PACS1"]


def test_bad_filters_are_refused() -> None:
    """Rule: a malformed day or period is refused, never read as no filter."""
    for bad in [
        {"received_from": "2026-13-01"},
        {"received_to": "26-11-01"},
        {"period": "year"},
    ]:
        with pytest.raises(RejectError):
            reports.ReportFilter(**bad)  # type: ignore[arg-type]
    with pytest.raises(RejectError):
        search.StudyFilter(received_from="yesterday")


@pytest.fixture()
def client(sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(create_app(sessions, profiles_dir=PROFILES_DIR)) as c:
        yield c


def test_api_and_cli_give_the_same_answer(
    sessions: sessionmaker[Session],
    seeded: Seeded,
    client: TestClient,
    db_url: str,
    tmp_path: Path,
) -> None:
    """Rule: GET /reports, its CSV and `amana catalog report` answer what the catalog holds."""
    token = mint(sessions, "auditor")
    headers = {"Authorization": f"Bearer {token}"}
    answer = client.get("/reports", params={"period": "week"}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert _totals(answer.json()) == _expected(seeded)
    as_csv = client.get("/reports", params={"period": "week", "format": "csv"}, headers=headers)
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    archived = sum(int(r["instances"]) for r in rows if r["table"] == "archived")
    assert archived == sum(seeded.instances.values())
    studies = client.get("/studies", params={"source": "CHU_FES"}, headers=headers).json()
    assert {s["study_uid"] for s in studies["items"]} == seeded.studies["CHU_FES (CHU Fes)"]
    env = {"AMANA_DATABASE_URL": db_url, "AMANA_HOME": str(tmp_path / "home")}
    printed = CliRunner().invoke(catalog_app, ["report", "--period", "week"], env=env)
    assert printed.exit_code == 0, printed.output
    assert _totals(json.loads(printed.stdout)) == _expected(seeded)
    # The forbidden role gets nothing.
    steward = mint(sessions, "steward")
    refused = client.get("/reports", headers={"Authorization": f"Bearer {steward}"})
    assert refused.status_code == 403
