"""The stewards' quarantine pages over HTTP: the before/after preview of a held original
(stewards only, not cached, recorded as an access) and its release, confirmed, through
the same step as the API's route."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from archive import audit
from archive.api import create_app
from archive.catalog.models import QuarantineEntry, QuarantineStatus
from archive.catalog.models_governance import AuditEvent
from tests.catalog.conftest import mint
from tests.console.conftest import DRAWN_NAME, Seeded, burned_in_original, seed
from tests.console.test_console_http import CSRF, sign_in
from tests.paths import PROFILES_DIR
from tests.pixels.imaging import COLUMNS, ROWS

PICTURE = re.compile(r'src="data:image/png;base64,([^"]+)"')


@pytest.fixture()
def seeded(sessions: sessionmaker[Session], tmp_path: Path) -> Seeded:
    return seed(sessions, tmp_path / "quarantine")


@pytest.fixture()
def client(sessions: sessionmaker[Session], tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(
        sessions,
        profiles_dir=PROFILES_DIR,
        quarantine_dir=tmp_path / "quarantine",
        spool_dir=tmp_path / "spool",
        release_dir=tmp_path / "released",
    )
    with TestClient(app) as c:
        yield c


def _events(sessions: sessionmaker[Session]) -> list[AuditEvent]:
    with sessions() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


@pytest.mark.ocr
def test_steward_sees_before_and_after_uncached_and_recorded(
    sessions: sessionmaker[Session], seeded: Seeded, tmp_path: Path, client: TestClient
) -> None:
    """Rule: a steward's preview shows the engine's before/after picture of the original
    under the profile in force (its panels are checked in tests/pixels/test_preview.py),
    the words it read are in the picture only, the page is not cached, the view is
    recorded as an access to the instance by the steward's token, and nothing of the
    picture is written to disk."""
    entry = seeded.entries[0]
    burned_in_original(tmp_path / "quarantine", sessions, entry)
    token = mint(sessions, "steward")
    sign_in(client, token)
    files_before = {p for p in tmp_path.rglob("*") if p.is_file()}
    before_events = len(_events(sessions))
    answer = client.get(f"/console/quarantine/{entry}/preview")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    (encoded,) = PICTURE.findall(answer.text)
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB"))
    assert picture.shape[1] > 2 * COLUMNS and picture.shape[0] > ROWS  # two panels
    assert 'id="preview-outcome">archived<' in answer.text
    for word in DRAWN_NAME:
        assert word not in answer.text.replace(encoded, "")  # in the picture only
    [event] = _events(sessions)[before_events:]
    assert event.event_id == audit.EventId.INSTANCES_ACCESSED.value
    assert (event.actor, event.object_type, event.object_id) == (
        token.partition(".")[0],
        "quarantine",
        str(entry),
    )
    assert '"original-preview"' in event.detail
    for word in DRAWN_NAME:
        assert word not in event.detail
    assert {p for p in tmp_path.rglob("*") if p.is_file()} - files_before <= {
        p for p in tmp_path.rglob("*") if p.suffix in (".db", ".db-journal", ".db-wal")
    }


def test_auditor_cannot_open_the_original(
    sessions: sessionmaker[Session], seeded: Seeded, client: TestClient
) -> None:
    """Rule: the original's picture is for stewards only: an auditor (who reads the
    quarantine list and entries) gets 403, recorded as a Security Alert, and no link."""
    entry = seeded.entries[0]
    sign_in(client, mint(sessions, "auditor"))
    assert "show-preview" not in client.get(f"/console/quarantine/{entry}").text
    before = len(_events(sessions))
    assert client.get(f"/console/quarantine/{entry}/preview").status_code == 403
    assert [e.event_id for e in _events(sessions)[before:]] == [
        audit.EventId.SECURITY_ALERT.value
    ]


def test_release_needs_confirmation_then_hands_the_original_out(
    sessions: sessionmaker[Session], seeded: Seeded, tmp_path: Path, client: TestClient
) -> None:
    """Rule: release is confirmed first (unconfirmed: refused and recorded, nothing moves);
    confirmed, the original leaves the quarantine for the release folder (mode 0600), the
    entry is RELEASED, and the event is the API's and CLI's quarantine step."""
    entry = seeded.entries[1]
    original = burned_in_original(tmp_path / "quarantine", sessions, entry)
    sign_in(client, mint(sessions, "steward"))
    csrf = CSRF.search(client.get(f"/console/quarantine/{entry}").text).group(1)  # type: ignore[union-attr]
    before = len(_events(sessions))
    refused = client.post(f"/console/quarantine/{entry}/release", data={"csrf": csrf})
    assert refused.status_code == 422
    [event] = _events(sessions)[before:]
    assert event.outcome != audit.Outcome.SUCCESS.value and '"release"' in event.detail
    assert not (tmp_path / "released").exists()
    done = client.post(
        f"/console/quarantine/{entry}/release", data={"csrf": csrf, "confirm": "yes"}
    )
    assert done.status_code == 200 and 'id="done"' in done.text
    released = tmp_path / "released" / f"quarantine-{entry}.dcm"
    assert released.read_bytes() == original
    assert released.stat().st_mode & 0o777 == 0o600
    with sessions() as session:
        held = session.get_one(QuarantineEntry, entry)
        assert held.status is QuarantineStatus.RELEASED
        assert not (tmp_path / "quarantine" / held.stored_name).exists()
    last = _events(sessions)[-2]  # the release, then the entry page it redirected to
    assert (last.event_id, last.action, last.object_id) == (
        audit.EventId.SECURITY_ALERT.value,
        audit.Action.DELETE.value,
        str(entry),
    )
    # Released: no preview, no second release.
    assert "show-preview" not in done.text and 'id="release"' not in done.text


def test_api_release_is_the_same_step(
    sessions: sessionmaker[Session], seeded: Seeded, tmp_path: Path, client: TestClient
) -> None:
    """Rule: the API's release (bearer token, no form) hands the original out the same way
    and answers with the released file's name; a second release is a conflict."""
    entry = seeded.entries[2]
    headers = {"Authorization": f"Bearer {mint(sessions, 'steward')}"}
    answer = client.post(f"/quarantine/{entry}/release", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "entry_id": entry,
        "status": "RELEASED",
        "released_as": f"quarantine-{entry}.dcm",
    }
    assert (tmp_path / "released" / f"quarantine-{entry}.dcm").read_bytes() == b"original"
    assert client.post(f"/quarantine/{entry}/release", headers=headers).status_code == 409
