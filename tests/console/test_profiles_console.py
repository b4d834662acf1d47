"""The stewards' profile pages over HTTP: the lint result of a version and of a refused
upload, and the dry run on an uploaded sample with masked before-values and only the
masked picture (archive/api/profile_steps.py, shared with the API's routes)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from archive import audit
from archive.api import create_app
from archive.catalog.models_governance import AuditEvent, ProfileVersion
from tests.catalog.conftest import mint
from tests.console.conftest import DRAWN_NAME, burned_in_bytes
from tests.console.test_console_http import sign_in
from tests.paths import PROFILES_DIR, REPO_ROOT
from tests.pixels.imaging import PATIENT_ID

NATIONAL = (REPO_ROOT / "profiles" / "ma-national.yaml").read_text(encoding="utf-8")


@pytest.fixture()
def client(sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(create_app(sessions, profiles_dir=PROFILES_DIR)) as c:
        yield c


def _propose(client: TestClient, csrf: str, text: str) -> tuple[int, str]:
    answer = client.post(
        "/console/profiles",
        data={"csrf": csrf},
        files={"profile": ("p.yaml", text.encode(), "application/yaml")},
    )
    return answer.status_code, answer.text


def _events(sessions: sessionmaker[Session]) -> list[AuditEvent]:
    with sessions() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def test_refused_upload_shows_the_loaders_line_and_stores_nothing(
    sessions: sessionmaker[Session], client: TestClient
) -> None:
    """Rule: a profile the workers' loader refuses is shown back with its line and reason
    (the lint result), nothing is stored, and the refusal is recorded."""
    csrf = sign_in(client, mint(sessions, "steward"))
    broken = NATIONAL.replace(
        "\nattributes:\n",
        "\nattributes:\n  - tag: (0010,0010)\n    keyword: PatientName\n    action: NOPE\n",
        1,
    )
    before = len(_events(sessions))
    status, page = _propose(client, csrf, broken)
    assert status == 422
    found = re.search(r'id="propose-refusal">.*?<code>(.*?)</code>', page, re.S)
    assert found is not None and "line" in found.group(1)
    with sessions() as session:
        assert (
            session.scalars(
                select(ProfileVersion).where(ProfileVersion.status == "PROPOSED")
            ).first()
            is None
        )
    [event] = _events(sessions)[before:]
    assert event.outcome != audit.Outcome.SUCCESS.value


def test_version_page_shows_lint_problems(
    sessions: sessionmaker[Session], client: TestClient
) -> None:
    """Rule: a stored version's page shows what `amana profile lint` would report: an OCR
    language that is not installed is listed; the shipped profile lints clean."""
    csrf = sign_in(client, mint(sessions, "steward"))
    status, _ = _propose(
        client,
        csrf,
        NATIONAL.replace("languages: [ara, fra, eng]", "languages: [ara, fra, eng, tlh]"),
    )
    assert status == 200
    with sessions() as session:
        proposed = session.scalars(
            select(ProfileVersion.id).where(ProfileVersion.status == "PROPOSED")
        ).one()
        shipped = session.scalars(
            select(ProfileVersion.id).where(
                ProfileVersion.status == "ACTIVE", ProfileVersion.name == "ma-national"
            )
        ).first()
    page = client.get(f"/console/profiles/{proposed}").text
    lint = re.search(r'<ul id="lint" class="error">(.*?)</ul>', page, re.S)
    assert lint is not None and "OCR languages not installed" in lint.group(1)
    if shipped is not None:
        assert '<p id="lint">' in client.get(f"/console/profiles/{shipped}").text


@pytest.mark.ocr
def test_dry_run_masks_before_values_and_shows_no_original(
    sessions: sessionmaker[Session], client: TestClient
) -> None:
    """Rule: a dry run on an uploaded sample shows the outcome, the explain table with the
    identifying before-values masked, and the masked picture: neither the header's
    identity nor the words burned into the pixels appear in the page; it is recorded
    without the sample's values."""
    csrf = sign_in(client, mint(sessions, "steward"))
    status, _ = _propose(
        client, csrf, NATIONAL.replace("languages: [ara, fra, eng]", "languages: [fra, ara, eng]")
    )
    assert status == 200
    with sessions() as session:
        version_id = session.scalars(
            select(ProfileVersion.id).where(ProfileVersion.status == "PROPOSED")
        ).one()
    before = len(_events(sessions))
    answer = client.post(
        f"/console/profiles/{version_id}/dry-run",
        data={"csrf": csrf},
        files=[("samples", ("us.dcm", burned_in_bytes(), "application/dicom"))],
    )
    assert answer.status_code == 200, answer.text
    page = answer.text
    assert 'class="outcome">archived<' in page
    assert 'id="dry-run-picture-1"' in page
    assert "PatientName" in page  # the row is there ...
    for value in ("Testpatient", "Fatima", PATIENT_ID, *DRAWN_NAME):
        assert value not in page  # ... its value is not
    [event] = _events(sessions)[before:]
    assert event.outcome == audit.Outcome.SUCCESS.value
    assert "Testpatient" not in event.detail and PATIENT_ID not in event.detail
