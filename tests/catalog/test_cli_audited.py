"""The command line leaves the same audit trail as the API: every read and every change is
one audited unit of work, and job ids reach the queue only after their commit."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import typer
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from amana.celery_app import node_queue
from amana.cli_governance import approve, propose, versions
from amana.cli_quarantine import quarantine_app
from amana.cli_sources import sources_app
from amana.cli_tokens import token_app
from amana.cli_users import user_app
from archive.catalog.models import Job, JobStatus, QuarantineEntry, QuarantineStatus
from archive.catalog.models_governance import (
    AuditHead,
    ProfileApproval,
    ProfileVersion,
    Source,
)
from archive.work.publish import attach_job_sink
from ingest.folder import ImportLedger, import_folder
from ingest.spool import Spool
from tests.catalog.conftest import audit_events, hold, mint, revised_national_profile, run_cli

profile_app = typer.Typer()
for command in (propose, approve, versions):
    profile_app.command(command.__name__)(command)


@pytest.fixture()
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "AMANA_DATABASE_URL": db_url,
        "AMANA_HOME": str(tmp_path / "home"),
        "AMANA_QUARANTINE_DIR": str(tmp_path / "quarantine"),
    }


def _proposed_version(env: dict[str, str], tmp_path: Path, steward: str) -> str:
    revised = revised_national_profile(tmp_path)
    out = run_cli(profile_app, ["propose", str(revised), "--token", steward], env)
    return out.split(" version ")[1].split()[0]


def test_each_cli_read_adds_exactly_one_query_event(
    env: dict[str, str], sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: `token list`, `user list`, `sources list`, `profile versions`, `quarantine list` and
    `quarantine show` each add exactly one event to the audit trail: a Query by the
    operator (`cli:<login>`), with the object type the same HTTP route records."""
    entry_id = hold(sessions, tmp_path / "quarantine", "held1")
    reads: list[tuple[typer.Typer, list[str], str, str]] = [
        (token_app, ["list", "--format", "json"], "token", "E"),
        (user_app, ["list", "--format", "json"], "user", "E"),
        (sources_app, ["list", "--format", "json"], "source", "E"),
        (profile_app, ["versions", "--format", "json"], "profile_version", "E"),
        (quarantine_app, ["list", "--format", "json"], "quarantine", "E"),
        (quarantine_app, ["show", str(entry_id), "--format", "json"], "quarantine", "R"),
    ]
    for app, args, object_type, action in reads:
        before = len(audit_events(sessions))
        run_cli(app, args, env)
        added = audit_events(sessions)[before:]
        assert len(added) == 1, (args, [e.detail for e in added])
        event = added[0]
        assert (event.event_id, event.action, event.outcome) == ("110112", action, 0), args
        assert event.object_type == object_type and event.actor.startswith("cli:"), args
    shown = json.loads(run_cli(quarantine_app, ["show", str(entry_id), "--format", "json"], env))
    assert shown[0]["reason"] == "residual_phi"
    assert audit_events(sessions)[-1].object_id == str(entry_id)


def test_refused_cli_approval_adds_one_failure_event_and_changes_nothing(
    env: dict[str, str], sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: a CLI approval that is refused — the proposer approving their own version, or a
    version that does not exist — adds exactly one event (Security Alert / Security
    Configuration, outcome minor failure, the refusal's code) and changes no version or
    approval, as the same refusal over HTTP."""
    alice = mint(sessions, "steward")
    version = _proposed_version(env, tmp_path, alice)

    def state() -> tuple[list[tuple[str, str]], int]:
        with sessions() as session:
            rows = session.execute(select(ProfileVersion.version, ProfileVersion.status)).all()
            approvals = session.scalar(select(func.count()).select_from(ProfileApproval))
        return [(v, s.value) for v, s in rows], int(approvals or 0)

    for ref, code in ((version, "conflict"), ("0" * 12, "not_found")):
        before_state, before = state(), len(audit_events(sessions))
        run_cli(profile_app, ["approve", ref, "--token", alice], env, code=1)
        added = audit_events(sessions)[before:]
        assert len(added) == 1, [e.detail for e in added]
        event = added[0]
        assert (event.event_id, event.event_type, event.action, event.outcome) == (
            "110113",
            "110129",
            "U",
            4,
        )
        assert event.object_type == "profile_version"
        assert event.actor == alice.split(".")[0]
        assert json.loads(event.detail)["refused"] == code
        assert state() == before_state


def test_cli_write_fails_whole_without_its_audit_event(
    env: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    """Rule: a CLI change is committed with its audit event or not at all: with the audit
    head row missing, `amana sources add` fails and no source is added."""
    with sessions.begin() as session:
        session.execute(delete(AuditHead))
    out = run_cli(sources_app, ["add", "CHU_FES", "10.5.0.0/16"], env, code=1)
    assert "audit" in out
    with sessions() as session:
        assert session.scalars(select(Source)).all() == []


def test_cli_quarantine_retry_queues_the_job_after_its_commit(
    env: dict[str, str], sessions: sessionmaker[Session], tmp_path: Path, redis_url: str
) -> None:
    """Rule: `amana quarantine retry` commits the job back to RECEIVED with its audit event,
    and only then sends the job id to the queue (one message, through the process's
    publisher); a refused retry sends nothing."""
    import redis

    entry_id = hold(sessions, tmp_path / "quarantine", "held1")
    env = {
        **env,
        "AMANA_BROKER_URL": redis_url,
        "AMANA_SPOOL_DIR": str(tmp_path / "spool"),
        "AMANA_NODE": "node-r",
    }
    (tmp_path / "spool" / "incoming").mkdir(parents=True)
    out = run_cli(quarantine_app, ["retry", str(entry_id)], env)
    assert "queued again" in out and "unavailable" not in out
    with sessions() as session:
        entry = session.get_one(QuarantineEntry, entry_id)
        job = session.get_one(Job, entry.job_id)
        assert entry.status is QuarantineStatus.RETRIED and job.status is JobStatus.RECEIVED
        # The original is now in node-r's spool: the job is node-r's, sent to its queue.
        assert job.node == "node-r"
        job_id = job.id
    broker = redis.Redis.from_url(redis_url)
    messages = [json.loads(m) for m in broker.lrange(node_queue("node-r"), 0, -1)]
    assert [json.loads(base64.b64decode(m["body"]))[0] for m in messages] == [[[job_id]]]
    run_cli(quarantine_app, ["retry", str(entry_id)], env, code=1)
    assert broker.llen(node_queue("node-r")) == 1
    event = audit_events(sessions)[-1]
    assert (event.object_id, event.outcome) == (str(entry_id), 4)


def test_folder_import_hands_committed_job_ids_to_the_sink(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: folder import enqueues each job after its commit: the sink attached to the
    sessionmaker receives every new job id once, when the job row is already visible to
    another session; a second run queues nothing."""
    backlog = tmp_path / "backlog"
    backlog.mkdir()
    for n in range(3):
        (backlog / f"f{n}.dcm").write_bytes(b"\0" * 128 + b"DICM" + bytes([n]) * 32)
    (backlog / "notes.txt").write_text("not dicom")
    seen: list[int] = []

    def sink(job_ids: list[int] | tuple[int, ...]) -> None:
        with sessions() as other:
            assert all(other.get(Job, job_id) is not None for job_id in job_ids)
        seen.extend(job_ids)

    attach_job_sink(sessions, sink)
    spool = Spool(tmp_path / "spool", 0, 1 << 20)
    ledger = ImportLedger(tmp_path / "ledger.txt")
    report = import_folder(backlog, spool=spool, sessions=sessions, ledger=ledger)
    assert report.queued == 3 and len(report.skipped) == 1
    with sessions() as session:
        assert sorted(seen) == sorted(session.scalars(select(Job.id)).all())
    again = import_folder(backlog, spool=spool, sessions=sessions, ledger=ledger)
    assert again.queued == 0 and len(seen) == 3


def test_each_successful_cli_profile_step_adds_exactly_one_event(
    env: dict[str, str], sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: a CLI propose, approve and activate each add exactly one event (Security Alert /
    Security Configuration, outcome success, the version as object), carrying the step's
    details — the step and its audit record are one unit of work, not two records."""
    from amana.cli_governance import activate

    steps = typer.Typer()
    for command in (propose, approve, activate):
        steps.command(command.__name__)(command)
    alice, bob = mint(sessions, "steward"), mint(sessions, "steward")
    before = len(audit_events(sessions))
    version = _proposed_version(env, tmp_path, alice)
    for args in (["approve", version, "--token", bob], ["activate", version, "--token", bob]):
        run_cli(steps, args, env)
    added = audit_events(sessions)[before:]
    details = [json.loads(e.detail) for e in added]
    assert [d.get("step") for d in details] == ["propose", "approve", "activate"], details
    for event in added:
        assert (event.event_id, event.outcome, event.object_id) == ("110113", 0, version)
        assert event.object_type == "profile_version"
