"""A registered source's profile and region are what its studies get; each profile name has
one active version, which workers follow within the refresh interval."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.engine import Deidentifier, key_from_bytes, load_profile
from anonymizer.errors import RejectError
from archive.api import create_app
from archive.catalog.models import Instance, Job, Series, Study
from archive.catalog.models_governance import AuditEvent, ProfileVersion, ProfileVersionStatus
from archive.governance.builtins import SYSTEM_ACTOR, register_builtin_profiles
from archive.governance.sources import add_source, edit_source, set_enabled
from archive.governance.watcher import ProfileRegistry
from archive.work.jobs import create_job
from archive.work.pipeline import JobResult, WorkerContext
from ingest.spool import Spool
from tests.catalog.conftest import mint
from tests.paths import REPO_ROOT
from tests.support.pipeline_helpers import process_to_end

PROFILES = REPO_ROOT / "profiles"
NATIONAL = (PROFILES / "ma-national.yaml").read_text(encoding="utf-8")
BASIC = (PROFILES / "dicom-basic.yaml").read_text(encoding="utf-8")


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def client(sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    register_builtin_profiles(sessions, PROFILES)
    with TestClient(create_app(sessions, profiles_dir=PROFILES)) as c:
        yield c


def _propose(client: TestClient, token: str, text: str) -> dict[str, object]:
    response = client.post(
        "/profiles", headers=_h(token), files={"profile": ("p.yaml", text.encode(), "text/yaml")}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _revised_national(note: str) -> str:
    return NATIONAL.replace(
        "\nattributes:\n",
        f"\nattributes:\n  - tag: (0018,1030)\n    keyword: ProtocolName\n    action: X\n"
        f"    note: {note}\n",
        1,
    )


def _revised_basic() -> str:
    return BASIC.replace("  PS3.15 Basic Application", "  Revised. PS3.15 Basic Application", 1)


def _activate(client: TestClient, text: str) -> str:
    alice, bob = mint_pair(client)
    version = str(_propose(client, alice, text)["version"])
    assert client.post(f"/profiles/{version}/approve", headers=_h(bob)).status_code == 200
    assert client.post(f"/profiles/{version}/activate", headers=_h(alice)).status_code == 200
    return version


def mint_pair(client: TestClient) -> tuple[str, str]:
    sessions: sessionmaker[Session] = client.app.state.api.sessions  # type: ignore[attr-defined]
    return mint(sessions, "steward"), mint(sessions, "steward")


# --- registration ---------------------------------------------------------------------------


def test_unknown_region_or_profile_is_refused_at_registration(
    sessions: sessionmaker[Session],
) -> None:
    """Rule: a source's region must be a region of the steward-kept table and its profile a
    profile file or a catalog version; anything else is refused with a RejectError, and
    nothing is registered. A known region is stored with the table's spelling."""
    with sessions.begin() as session:
        with pytest.raises(RejectError, match="unknown region"):
            add_source(
                session,
                ae_title="CHU_X",
                address="10.0.0.1",
                region="Atlantis",
                profiles_dir=PROFILES,
            )
        with pytest.raises(RejectError, match="unknown profile"):
            add_source(
                session,
                ae_title="CHU_X",
                address="10.0.0.1",
                profile_name="no-such-profile",
                profiles_dir=PROFILES,
            )
        source = add_source(
            session,
            ae_title="CHU_X",
            address="10.0.0.1",
            profile_name="dicom-basic",
            region="rabat-sale-kenitra",
            profiles_dir=PROFILES,
        )
        assert (source.profile_name, source.region) == ("dicom-basic", "Rabat-Sale-Kenitra")
        with pytest.raises(RejectError, match="unknown region"):
            edit_source(session, "CHU_X", PROFILES, region="Atlantis")
        edited, changes = edit_source(session, "CHU_X", PROFILES, region="Souss-Massa")
        assert edited.region == "Souss-Massa" and changes == {
            "region": ["Rabat-Sale-Kenitra", "Souss-Massa"]
        }


def test_sources_api_refuses_unknown_region_and_patches(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    """Rule: over HTTP too, an unknown region or profile is a 422 and nothing is added; a
    PATCH changes profile or region and disables a source, each audited."""
    admin = mint(sessions, "admin")
    bad = client.post(
        "/sources",
        headers=_h(admin),
        json={"ae_title": "CHU_Y", "address": "10.0.0.2", "region": "Atlantis"},
    )
    assert bad.status_code == 422 and "unknown region" in bad.json()["error"]
    bad = client.post(
        "/sources",
        headers=_h(admin),
        json={"ae_title": "CHU_Y", "address": "10.0.0.2", "profile": "no-such-profile"},
    )
    assert bad.status_code == 422 and "unknown profile" in bad.json()["error"]
    assert client.get("/sources", headers=_h(admin)).json() == []
    made = client.post(
        "/sources",
        headers=_h(admin),
        json={"ae_title": "CHU_Y", "address": "10.0.0.2", "profile": "dicom-basic"},
    )
    assert made.status_code == 201, made.text
    patched = client.patch(
        "/sources/CHU_Y", headers=_h(admin), json={"region": "Oriental", "enabled": False}
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["region"], patched.json()["enabled"]) == ("Oriental", False)
    with sessions() as session:
        details = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.object_id == "CHU_Y")
        ).all()
    assert any('"region":[null,"Oriental"]' in d and '"enabled":[true,false]' in d for d in details)


# --- versions -------------------------------------------------------------------------------


def test_builtin_profiles_are_registered_once_as_active_versions(
    sessions: sessionmaker[Session],
) -> None:
    """Rule: every shipped profile becomes an ACTIVE version by the system actor, with one
    audit event; a second start registers nothing more."""
    first = register_builtin_profiles(sessions, PROFILES)
    assert {entry.split("@")[0] for entry in first} >= {"ma-national", "dicom-basic"}
    assert register_builtin_profiles(sessions, PROFILES) == []
    with sessions() as session:
        rows = session.scalars(select(ProfileVersion)).all()
        events = session.scalars(select(AuditEvent).where(AuditEvent.actor == SYSTEM_ACTOR)).all()
    national = next(r for r in rows if r.name == "ma-national")
    assert national.status == ProfileVersionStatus.ACTIVE
    assert national.version == load_profile("ma-national", PROFILES).version
    assert len(events) == 1


def test_two_active_versions_of_one_name_are_impossible(
    sessions: sessionmaker[Session],
) -> None:
    """Rule: the catalog refuses a second ACTIVE row for a profile name, whatever writes it."""
    register_builtin_profiles(sessions, PROFILES)
    with pytest.raises(IntegrityError), sessions.begin() as session:
        row = session.scalars(
            select(ProfileVersion).where(ProfileVersion.name == "ma-national")
        ).one()
        session.add(
            ProfileVersion(
                name="ma-national",
                version="0" * 16,
                yaml_text=row.yaml_text,
                status=ProfileVersionStatus.ACTIVE,
                proposed_by="x",
                proposed_at=row.proposed_at,
            )
        )
        session.flush()


def test_statuses_go_proposed_approved_active_retired(client: TestClient) -> None:
    """Rule: a proposal is PROPOSED, APPROVED after the second steward's approval, ACTIVE
    once activated, and RETIRED when another version of its name is activated; only one
    version of a name is ever ACTIVE, and the built-in version is what the first one
    replaces."""
    alice, bob = mint_pair(client)
    first = _propose(client, alice, _revised_national("one"))
    version = str(first["version"])
    assert first["status"] == "PROPOSED"
    approved = client.post(f"/profiles/{version}/approve", headers=_h(bob)).json()
    assert approved["status"] == "APPROVED"
    assert client.post(f"/profiles/{version}/activate", headers=_h(alice)).json()["status"] == (
        "ACTIVE"
    )
    second = _activate(client, _revised_national("two"))
    rows = client.get("/profiles?name=ma-national", headers=_h(alice)).json()
    statuses = {row["version"]: row["status"] for row in rows}
    builtin = load_profile("ma-national", PROFILES).version
    assert statuses == {builtin: "RETIRED", version: "RETIRED", second: "ACTIVE"}


def test_first_proposal_diffs_against_the_registered_builtin(client: TestClient) -> None:
    """Rule: the first proposal of a shipped profile is diffed against the built-in version
    that runs: a handful of changes, not the whole profile."""
    alice, _bob = mint_pair(client)
    proposal = _propose(client, alice, _revised_national("diff"))
    assert proposal["against"] == load_profile("ma-national", PROFILES).version
    diff = proposal["diff"]
    assert isinstance(diff, list) and 0 < len(diff) < 10, diff


# --- workers --------------------------------------------------------------------------------


def _worker(sessions: sessionmaker[Session], tmp_path: Path) -> WorkerContext:
    registry = ProfileRegistry(sessions, PROFILES, "ma-national", interval_s=0)
    default = Deidentifier(registry.current(), key_from_bytes(os.urandom(32)))
    return WorkerContext(
        sessions=sessions,
        deidentifier=default,
        spool_dir=tmp_path / "spool",
        archive_dir=tmp_path / "archive",
        quarantine_dir=tmp_path / "quarantine",
        stale_after=timedelta(seconds=300),
        profiles=registry,
    )


def _job(ctx: WorkerContext, sessions: sessionmaker[Session], source_id: int | None) -> int:
    """A job for a CT instance of a study of its own (made-up UIDs)."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    path = ctx.spool_dir.parent / f"{ds.SOPInstanceUID}.dcm"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    name, size = Spool(ctx.spool_dir, 0).copy_in(path)
    with sessions.begin() as session:
        return create_job(
            session,
            spool_name=name,
            size_bytes=size,
            calling_ae="PACS_B",
            source_kind="dicom",
            source_id=source_id,
        )


def test_activating_another_name_changes_what_its_sources_get(
    client: TestClient, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: a source's jobs run under its profile's active version and its region lands in
    the catalog; activating a new version of that name (not AMANA_PROFILE's) changes what
    the next job of that source gets, while the default profile's jobs are unchanged."""
    with sessions.begin() as session:
        source_id = add_source(
            session,
            ae_title="PACS_B",
            address="10.0.0.3",
            profile_name="dicom-basic",
            region="Souss-Massa",
            profiles_dir=PROFILES,
        ).id
    ctx = _worker(sessions, tmp_path)
    basic = load_profile("dicom-basic", PROFILES).version
    national = load_profile("ma-national", PROFILES).version
    first = _job(ctx, sessions, source_id)
    assert process_to_end(ctx, [first]) == {first: JobResult.ARCHIVED}
    with sessions() as session:
        study = session.scalars(select(Study)).one()
    assert (study.profile_name, study.profile_version, study.region) == (
        "dicom-basic",
        basic,
        "Souss-Massa",
    )

    revised = _activate(client, _revised_basic())
    assert revised != basic
    second = _job(ctx, sessions, source_id)
    unattributed = _job(ctx, sessions, None)
    assert process_to_end(ctx, [second, unattributed]) == {
        second: JobResult.ARCHIVED,
        unattributed: JobResult.ARCHIVED,
    }
    with sessions() as session:
        studies = {
            job_id: (study.profile_name, study.profile_version, study.region)
            for job_id, study in session.execute(
                select(Job.id, Study)
                .join(Instance, Instance.id == Job.instance_id)
                .join(Series, Series.id == Instance.series_id)
                .join(Study, Study.id == Series.study_id)
            )
        }
    assert studies[second] == ("dicom-basic", revised, "Souss-Massa")
    # No source, no source region: the national profile derives it from the header.
    assert studies[unattributed][:2] == ("ma-national", national)


def test_disabled_source_is_refused_at_association(sessions: sessionmaker[Session]) -> None:
    """Rule: a disabled source is refused like an unknown one, even from loopback in the
    embedded mode; enabled again, it is accepted and its jobs are attributed to it."""
    from archive.governance.sources import SourceGate

    gate = SourceGate(sessions, open_when_empty=False)
    with sessions.begin() as session:
        source_id = add_source(session, ae_title="PACS_C", address="127.0.0.1").id
    assert gate.check("PACS_C", "127.0.0.1").source_id == source_id
    with sessions.begin() as session:
        set_enabled(session, "PACS_C", False)
    assert not gate.check("PACS_C", "127.0.0.1").allowed
    assert not gate.check("PACS_C", "127.0.0.1", waive_unknown=True).allowed
    assert gate.check("OTHER", "127.0.0.1", waive_unknown=True).allowed
