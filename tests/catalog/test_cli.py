"""The same queries and controls from the command line (`amana catalog/audit/token/sources`,
`amana profile propose/approve/activate/versions`)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import typer
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from amana.cli_catalog import audit_app, catalog_app
from amana.cli_governance import activate, approve, propose, versions
from amana.cli_sources import sources_app
from amana.cli_tokens import token_app
from amana.cli_users import user_app
from archive.catalog.models_governance import AuditEvent
from tests.catalog.conftest import add_instance, revised_national_profile

runner = CliRunner()

profile_app = typer.Typer()
for command in (propose, approve, activate, versions):
    profile_app.command(command.__name__)(command)


@pytest.fixture()
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return {"AMANA_DATABASE_URL": db_url, "AMANA_HOME": str(tmp_path / "home")}


def _run(app: typer.Typer, args: list[str], env: dict[str, str], code: int = 0) -> str:
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == code, (args, result.output, result.exception)
    return result.output


def _token(env: dict[str, str], name: str, role: str, *more: str) -> str:
    """A new user `name` with `role` and a first token of theirs, as an operator makes them."""
    _run(user_app, ["add", name, "--role", role], env)
    return _run(token_app, ["create", "--user", name, *more], env).strip()


def test_catalog_studies_json_keeps_the_list_shape(
    env: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    """Rule: `catalog studies --format json` lists objects with study_uid, modalities, series,
    instances and status (what scripts and the lead's harness read); filters narrow it."""
    add_instance(sessions, study="2.25.10", series="2.25.10.1", sop="2.25.10.1.1")
    add_instance(sessions, study="2.25.11", series="2.25.11.1", sop="2.25.11.1.1", modality="MR")
    rows = json.loads(_run(catalog_app, ["studies", "--format", "json"], env))
    assert [r["study_uid"] for r in rows] == ["2.25.10", "2.25.11"]
    assert {"study_uid", "modalities", "series", "instances", "status"} <= set(rows[0])
    assert rows[1]["modalities"] == ["MR"] and rows[1]["instances"] == 1
    only_mr = json.loads(
        _run(catalog_app, ["studies", "--format", "json", "--modality", "MR"], env)
    )
    assert [r["study_uid"] for r in only_mr] == ["2.25.11"]
    exported = _run(catalog_app, ["studies", "--format", "csv", "--full"], env)
    assert [r["study_uid"] for r in csv.DictReader(io.StringIO(exported))] == ["2.25.10", "2.25.11"]
    detail = json.loads(_run(catalog_app, ["show", "2.25.10"], env))
    assert detail["series_list"][0]["instances"][0]["sop_uid"] == "2.25.10.1.1"
    _run(catalog_app, ["show", "2.25.999"], env, code=1)
    stats = json.loads(_run(catalog_app, ["stats"], env))
    assert {m["modality"] for m in stats["by_modality"]} == {"CT", "MR"}


def test_audit_verify_passes_then_names_the_tampered_row(
    env: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    """Rule: `amana audit verify` passes on an untouched log and fails, naming the row, after a
    direct UPDATE or DELETE in the database."""
    for n in range(2):
        _token(env, f"t{n}", "auditor", "--label", f"t{n}")
    assert "intact" in _run(audit_app, ["verify"], env)
    with sessions.begin() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(actor="x"))
    out = _run(audit_app, ["verify"], env, code=1)
    assert "FAIL audit event seq 2" in out and "changed" in out
    with sessions.begin() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 2))
    out = _run(audit_app, ["verify"], env, code=1)
    assert "FAIL audit event seq 3" in out and "seq 2" in out


def test_audit_search_and_syslog_export(env: dict[str, str]) -> None:
    """Rule: audit events can be searched and exported as RFC 5424 lines from the CLI."""
    token = _token(env, "root", "admin")
    token_id = token.split(".")[0]
    rows = json.loads(_run(audit_app, ["search", "--format", "json", "--object", token_id], env))
    assert rows[0]["event"] == "Security Alert" and rows[0]["object_id"] == token_id
    *lines, head = _run(audit_app, ["export", "--syslog", "--hostname", "h1"], env).splitlines()
    assert " h1 amana - AMANA-HEAD [amana-head@32473 seq=" in head
    assert lines and all(
        line.startswith("<1") and " h1 amana - DICOM+RFC3881 " in line for line in lines
    )
    assert token.split(".")[1] not in "".join(lines)


def test_token_and_sources_commands(env: dict[str, str]) -> None:
    """Rule: tokens are printed once and listed without secrets; sources are added with an AE
    title and address (bad ones refused), listed and removed."""
    token = _token(env, "alice", "steward")
    assert token.startswith("tok_") and "." in token
    listed = json.loads(_run(token_app, ["list", "--format", "json"], env))
    assert listed[0]["role"] == "steward" and token.split(".")[1] not in json.dumps(listed)
    assert listed[0]["user"] == "alice" and listed[0]["expires_at"]
    _run(user_app, ["add", "mallory", "--role", "superuser"], env, code=1)
    _run(token_app, ["create", "--user", "nobody"], env, code=1)
    _run(
        sources_app,
        ["add", "CHU_FES", "10.5.0.0/16", "--region", "Fes-Meknes", "--site", "CHU Hassan II"],
        env,
    )
    _run(sources_app, ["add", "BAD", "somewhere"], env, code=1)
    rows = json.loads(_run(sources_app, ["list", "--format", "json"], env))
    assert rows == [
        {
            **rows[0],
            "ae_title": "CHU_FES",
            "address": "10.5.0.0/16",
            "region": "Fes-Meknes",
            "site": "CHU Hassan II",
        }
    ]
    _run(sources_app, ["remove", "CHU_FES"], env)
    assert json.loads(_run(sources_app, ["list", "--format", "json"], env)) == []


def test_sources_edit_disable_enable_are_checked_and_audited(
    env: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    """Rule: `sources add/edit` refuse an unknown profile or region (exit 1, nothing changed);
    `edit`, `disable` and `enable` change the source and leave one audit event each."""
    assert "unknown region" in _run(
        sources_app, ["add", "CHU_OUJDA", "10.6.0.1", "--region", "Atlantis"], env, code=1
    )
    assert "unknown profile" in _run(
        sources_app, ["add", "CHU_OUJDA", "10.6.0.1", "--profile", "no-such-profile"], env, 1
    )
    assert json.loads(_run(sources_app, ["list", "--format", "json"], env)) == []
    _run(sources_app, ["add", "CHU_OUJDA", "10.6.0.1", "--region", "Oriental"], env)
    _run(sources_app, ["edit", "CHU_OUJDA", "--region", "Atlantis"], env, code=1)
    out = _run(sources_app, ["edit", "CHU_OUJDA", "--profile", "dicom-basic"], env)
    assert "profile_name changed" in out
    _run(sources_app, ["disable", "CHU_OUJDA"], env)
    [row] = json.loads(_run(sources_app, ["list", "--format", "json"], env))
    assert (row["profile"], row["region"], row["enabled"]) == ("dicom-basic", "Oriental", False)
    _run(sources_app, ["enable", "CHU_OUJDA"], env)
    with sessions() as session:
        commands = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.object_id == "CHU_OUJDA")
        ).all()
    for command in ("sources edit", "sources disable", "sources enable"):
        assert sum(f'"command":"{command}"' in d for d in commands) == (
            2 if command == "sources edit" else 1
        ), commands


def test_profile_activation_from_the_cli_needs_two_stewards(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Rule: on the command line too, activation without a second steward's approval is
    refused, and the proposer cannot approve their own version."""
    alice = _token(env, "alice", "steward")
    bob = _token(env, "bob", "steward")
    auditor = _token(env, "ethics", "auditor")
    revised = revised_national_profile(tmp_path)
    _run(profile_app, ["propose", str(revised), "--token", auditor], env, code=1)
    out = _run(profile_app, ["propose", str(revised), "--token", alice], env)
    version = out.split(" version ")[1].split()[0]
    assert "(0018,1030)" in out
    refused = _run(profile_app, ["activate", version, "--token", alice], env, code=1)
    assert "second steward" in refused
    _run(profile_app, ["approve", version, "--token", alice], env, code=1)
    _run(profile_app, ["approve", version[:8]], {**env, "AMANA_TOKEN": bob})
    assert "now active" in _run(profile_app, ["activate", version, "--token", alice], env)
    rows = json.loads(_run(profile_app, ["versions", "--format", "json"], env))
    assert rows[0]["status"] == "ACTIVE" and rows[0]["approved_by"] == [bob.split(".")[0]]
