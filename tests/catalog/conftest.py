"""Catalogs migrated to head on SQLite and PostgreSQL, and a way to fill them without the engine."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from anonymizer.outcome import InstanceFacts
from archive.catalog.models import Job, JobStatus, QuarantineEntry, QuarantineStatus
from archive.catalog.models_governance import AuditEvent, Role, User
from archive.catalog.write import record_instance
from archive.governance.users import add_user, mint_for
from archive.work.jobs import create_job
from tests.paths import REPO_ROOT

_people = itertools.count(1)


def person(sessions: sessionmaker[Session], name: str, role: str) -> None:
    """A user without tokens yet."""
    with sessions.begin() as session:
        add_user(session, name=name, role=Role(role), created_by="test")


def mint(sessions: sessionmaker[Session], role: str, *, user: str | None = None) -> str:
    """A token of user `user` (made with `role` on first use), or of a new person when no
    user is named: two calls without a name are two people, two calls naming one user are
    one person's two tokens."""
    name = user or f"{role}-{next(_people)}"
    with sessions.begin() as session:
        if session.scalars(select(User.id).where(User.name == name)).first() is None:
            add_user(session, name=name, role=Role(role), created_by="test")
        minted = mint_for(session, name=name, by=None, created_by="test")
    return minted.token


def add_instance(
    sessions: sessionmaker[Session],
    *,
    study: str,
    series: str,
    sop: str,
    modality: str = "CT",
    region: str | None = "Casablanca-Settat",
    study_date: str = "20240105",
    version: str = "v1",
    when: datetime | None = None,
) -> int:
    """A catalog row as the pipeline writes it, with its DONE job (pseudonymous values only)."""
    now = when or datetime.now(UTC)
    facts = InstanceFacts(
        patient_pseudonym="P" + study.replace(".", "")[-10:],
        study_uid=study,
        series_uid=series,
        sop_instance_uid=sop,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        profile_name="ma-national",
        profile_version=version,
        key_id="k1",
        modality=modality,
        study_date=study_date,
        study_description="CT THORAX",
        region=region,
        patient_sex="F",
        patient_birth_year_band="1960-1969",
    )
    with sessions.begin() as session:
        job_id = create_job(
            session,
            spool_name=sop.replace(".", "")[-30:],
            size_bytes=10,
            calling_ae="PACS1",
            source_kind="dicom",
        )
        instance = record_instance(
            session,
            facts,
            archive_path=f"{study}/{series}/{sop}.dcm",
            sha256="0" * 64,
            size_bytes=10,
            now=now,
        )
        job = session.get_one(Job, job_id)
        job.status = JobStatus.DONE
        job.instance_id = instance.id
    return job_id


def revised_national_profile(folder: Path) -> Path:
    """`ma-national` with one more attribute rule: a new version to propose."""
    text = (REPO_ROOT / "profiles" / "ma-national.yaml").read_text(encoding="utf-8")
    revised = folder / "ma-national.yaml"
    revised.write_text(
        text.replace(
            "\nattributes:\n",
            "\nattributes:\n  - tag: (0018,1030)\n    keyword: ProtocolName\n    action: X\n",
            1,
        )
    )
    return revised


def hold(sessions: sessionmaker[Session], quarantine_dir: Path, name: str) -> int:
    """A HELD quarantine entry, its original in `quarantine_dir` and its QUARANTINED job."""
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    (quarantine_dir / name).write_bytes(b"original")
    with sessions.begin() as session:
        job_id = create_job(
            session, spool_name=name, size_bytes=8, calling_ae="PACS1", source_kind="dicom"
        )
        session.get_one(Job, job_id).status = JobStatus.QUARANTINED
        entry = QuarantineEntry(
            job_id=job_id,
            reason="residual_phi",
            message="m",
            stored_name=name,
            size_bytes=8,
            status=QuarantineStatus.HELD,
        )
        session.add(entry)
        session.flush()
        return entry.id


def run_cli(app: typer.Typer, args: list[str], env: dict[str, str], code: int = 0) -> str:
    """A command's output, once it ended with `code`."""
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == code, (args, result.output, result.exception)
    return result.output


def audit_events(sessions: sessionmaker[Session]) -> list[AuditEvent]:
    with sessions() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
