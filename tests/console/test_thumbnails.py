"""Study thumbnails: made from the de-identified file in the archive (never from the spool
or the quarantine), PNG, cacheable by the browser, for catalog readers, recorded."""

from __future__ import annotations

import io
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
from archive.catalog.models_governance import AuditEvent
from archive.catalog.thumbnails import THUMBNAIL_PX
from tests.catalog.conftest import mint
from tests.console.conftest import Seeded, app_on_orthanc, archived_instance, seed, write_archived
from tests.console.test_console_http import sign_in
from tests.paths import PROFILES_DIR
from tests.support.orthanc import Orthanc

STUDY, SERIES = "2.25.101", "2.25.101.1"
URL = f"/console/studies/{STUDY}/series/{SERIES}/thumbnail.png"
# The seeded series has instances .0, .1, .2: the middle one is pictured.
MIDDLE = f"{STUDY}/{SERIES}/{SERIES}.1.dcm"


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
        archive_dir=tmp_path / "archive",
    )
    with TestClient(app) as c:
        yield c


def _halves(png: bytes) -> tuple[float, float]:
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    middle = picture.shape[1] // 2
    return picture[:, : middle - 2].mean(), picture[:, middle + 2 :].mean()


def test_thumbnail_shows_the_archived_pixels(
    sessions: sessionmaker[Session], seeded: Seeded, tmp_path: Path, client: TestClient
) -> None:
    """Rule: the thumbnail is the archived file's picture (a PNG at most THUMBNAIL_PX on a
    side): change the archived file and the picture follows; the browser may cache it; the
    view is recorded as an access by the reader's token."""
    archive = tmp_path / "archive"
    write_archived(archive, MIDDLE, bright_right=True)
    token = mint(sessions, "auditor")
    sign_in(client, token)
    page = client.get(f"/console/studies/{STUDY}")
    assert URL in page.text
    answer = client.get(URL)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"
    assert "no-store" not in answer.headers["cache-control"]
    assert "private" in answer.headers["cache-control"]
    picture = Image.open(io.BytesIO(answer.content))
    assert max(picture.size) <= THUMBNAIL_PX
    left, right = _halves(answer.content)
    assert right > 200 > 50 > left
    write_archived(archive, MIDDLE, bright_right=False)
    left, right = _halves(client.get(URL).content)
    assert left > 200 > 50 > right
    with sessions() as session:
        last = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert last is not None
    assert (last.event_id, last.actor, last.object_id) == (
        audit.EventId.INSTANCES_ACCESSED.value,
        token.partition(".")[0],
        SERIES,
    )


def test_no_archived_file_no_picture_whatever_the_spool_holds(
    sessions: sessionmaker[Session], seeded: Seeded, tmp_path: Path, client: TestClient
) -> None:
    """Rule: thumbnails never come from the spool or the quarantine: with the archived file
    gone, the answer is 404 even though originals of the same instance sit there."""
    for folder in ("spool/incoming", "quarantine"):
        write_archived(tmp_path / folder, Path(MIDDLE).name, bright_right=True)
        write_archived(tmp_path / folder, MIDDLE, bright_right=True)
    sign_in(client, mint(sessions, "auditor"))
    assert client.get(URL).status_code == 404
    # A series of another study, or a path outside the archive, is no series.
    assert client.get(f"/console/studies/2.25.201/series/{SERIES}/thumbnail.png").status_code == 404
    assert client.get(f"/console/studies/{STUDY}/series/..%2F..%2Fx/thumbnail.png").status_code in (
        404,
        422,
    )


def test_thumbnails_follow_catalog_permission(
    sessions: sessionmaker[Session], seeded: Seeded, tmp_path: Path, client: TestClient
) -> None:
    """Rule: a role without catalog access (steward) gets 403 for a thumbnail."""
    write_archived(tmp_path / "archive", MIDDLE, bright_right=True)
    sign_in(client, mint(sessions, "steward"))
    assert client.get(URL).status_code == 403


def test_thumbnail_from_a_dicomweb_archive(
    sessions: sessionmaker[Session], seeded: Seeded, tmp_path: Path
) -> None:
    """Rules: with the archive a DICOMweb service (a real Orthanc), the thumbnail is the
    archived instance's picture, retrieved through the archive store (WADO-RS), with no
    archive folder at all: change the archived instance and the picture follows; an
    instance the archive does not hold is 404; an archive that does not answer is 503,
    never a picture from anywhere else."""
    orthanc = Orthanc(tmp_path / "orthanc").start()
    try:
        store, app = app_on_orthanc(sessions, tmp_path, orthanc)
        # Originals of the same instance where a folder archive would be: never shown.
        write_archived(tmp_path / "archive", MIDDLE, bright_right=False)
        with TestClient(app) as client:
            sign_in(client, mint(sessions, "auditor"))
            assert client.get(URL).status_code == 404
            store.put_many([(Path(MIDDLE), archived_instance(MIDDLE, bright_right=True))])
            answer = client.get(URL)
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "image/png"
            assert max(Image.open(io.BytesIO(answer.content)).size) <= THUMBNAIL_PX
            left, right = _halves(answer.content)
            assert right > 200 > 50 > left
            store.replace(Path(MIDDLE), archived_instance(MIDDLE, bright_right=False))
            left, right = _halves(client.get(URL).content)
            assert left > 200 > 50 > right
            orthanc.stop()
            assert client.get(URL).status_code == 503
    finally:
        orthanc.stop()
