"""The overview's service state: refused associations per calling AE title (from the
receivers' own audit events), each component's last start or stop, the broker as /health
reports it, and the backlog per source adding up to the total."""

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
from archive.catalog.models import Job, JobStatus
from archive.catalog.models_governance import Source
from archive.work.jobs import create_job
from tests.catalog.conftest import mint
from tests.console.conftest import Seeded, seed
from tests.console.test_console_http import sign_in
from tests.paths import PROFILES_DIR

ROW = re.compile(r"<tr>(.*?)</tr>", re.S)
CELL = re.compile(r"<t[dh]>(.*?)</t[dh]>", re.S)


def _table(page: str, table_id: str) -> list[list[str]]:
    body = page.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    body = body.split("<tbody>", 1)[1] if "<tbody>" in body else body
    return [CELL.findall(row) for row in ROW.findall(body)]


@pytest.fixture()
def seeded(sessions: sessionmaker[Session], tmp_path: Path) -> Seeded:
    return seed(sessions, tmp_path / "quarantine")


@pytest.fixture()
def client(sessions: sessionmaker[Session], tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(
        sessions,
        profiles_dir=PROFILES_DIR,
        broker_state=lambda: "down",
    )
    with TestClient(app) as c:
        yield c


def test_overview_shows_refusals_components_and_backlog(
    sessions: sessionmaker[Session], seeded: Seeded, client: TestClient
) -> None:
    """Rule: every refused association of the last 7 days is counted under its calling AE
    title with its reasons; each component shows its last recorded start or stop; the
    broker's state is /health's; the per-source backlog adds up to the total backlog."""
    for _ in range(3):
        audit.record(sessions, audit.association_refused("PACS_X", "10.9.9.9", "unregistered"))
    audit.record(sessions, audit.association_refused("CHU_FES", "10.2.0.7", "disabled"))
    audit.record(sessions, audit.application_activity("receiver", started=True))
    audit.record(sessions, audit.application_activity("worker", started=True))
    audit.record(sessions, audit.application_activity("worker", started=False))
    with sessions.begin() as session:
        rabat = session.scalars(select(Source.id).where(Source.ae_title == "CHU_RABAT")).one()
        for n, status in enumerate((JobStatus.RECEIVED, JobStatus.HELD, JobStatus.RUNNING)):
            job_id = create_job(
                session,
                spool_name=f"backlog-{n}",
                size_bytes=1,
                calling_ae="CHU_RABAT",
                source_kind="dicom",
            )
            job = session.get_one(Job, job_id)
            job.status, job.source_id = status, rabat
    sign_in(client, mint(sessions, "auditor"))
    page = client.get("/console/").text

    refused = {row[0]: row[1:] for row in _table(page, "refusals")}
    assert refused["PACS_X"][0] == "3" and refused["PACS_X"][1] == "unregistered: 3"
    assert refused["CHU_FES"][0] == "1" and refused["CHU_FES"][1] == "disabled: 1"
    assert list(refused) == ["PACS_X", "CHU_FES"]  # most refused first

    states = {row[0]: row[1] for row in _table(page, "components")}
    assert states["receiver"].startswith("started")
    assert states["worker"].startswith("stopped")
    assert states["api"] == "never recorded"
    assert 'id="broker-state">down<' in page

    backlog = {row[0]: int(row[3]) for row in _table(page, "sources")}
    assert backlog["CHU_RABAT (CHU Rabat)"] == 3
    total = re.search(r'id="backlog-waiting">(\d+)<', page)
    assert total is not None and sum(backlog.values()) == int(total.group(1))
