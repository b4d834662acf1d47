"""`amana profile propose/approve/activate/versions`: the two-steward activation of profiles.

Stewards identify themselves with their API token (`--token` or AMANA_TOKEN), so that the
proposer and the approver are told apart the same way on the command line and over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from amana.cli_catalog import catalog_session, fail, print_rows
from amana.errors import RejectError
from amana.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session

    from archive.catalog.models_governance import ProfileVersion
    from archive.governance.auth import Principal


TokenOpt = Annotated[
    str,
    typer.Option("--token", envvar="AMANA_TOKEN", help="your steward token (or AMANA_TOKEN)"),
]


def _steward(session: Session, token: str) -> Principal:
    from archive.governance.auth import Permission, authenticate

    principal = authenticate(session, token)
    principal.require(Permission.PROFILES_WRITE)
    return principal


def propose(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="profile YAML")],
    token: TokenOpt,
) -> None:
    """Upload a profile version: validated, diffed against the active one, stored PROPOSED."""
    from archive.governance.versions import propose as propose_version

    settings = Settings()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(RejectError(f"cannot read {file.name}: {type(exc).__name__}")) from exc
    with catalog_session() as session:
        try:
            principal = _steward(session, token)
            proposal = propose_version(session, text, principal, settings.profiles_dir)
        except RejectError as exc:
            session.commit()  # keeps the record of a refused upload
            raise fail(exc) from exc
        session.commit()
    pv = proposal.version
    state = "proposed" if proposal.created else "already known"
    typer.echo(f"{pv.name} version {pv.version} {state} (id {pv.id}, status {pv.status.value})")
    typer.echo(f"changes against {proposal.against or 'nothing'}: {len(proposal.diff)}")
    for change in proposal.diff[:200]:
        typer.echo(f"  {change['path']}: {change['old']!r} -> {change['new']!r}")
    if len(proposal.diff) > 200:
        typer.echo(f"  … {len(proposal.diff) - 200} more")


def _steward_step(
    version: str, token: str, step: Callable[..., ProfileVersion]
) -> tuple[ProfileVersion, Principal]:
    with catalog_session() as session:
        try:
            principal = _steward(session, token)
            pv = step(session, version, principal)
        except RejectError as exc:
            session.commit()  # a refusal is recorded in the audit trail
            raise fail(exc) from exc
        session.commit()
    return pv, principal


def approve(
    version: Annotated[str, typer.Argument(help="version digest (or prefix) or id")],
    token: TokenOpt,
) -> None:
    """Approve a proposed version (a steward other than its proposer)."""
    from archive.governance.versions import approve as approve_version

    pv, principal = _steward_step(version, token, approve_version)
    typer.echo(f"{pv.name} version {pv.version} approved by {principal.token_id}")


def activate(
    version: Annotated[str, typer.Argument(help="version digest (or prefix) or id")],
    token: TokenOpt,
) -> None:
    """Activate an approved version; workers switch to it within a minute."""
    from archive.governance.versions import activate as activate_version

    pv, _principal = _steward_step(version, token, activate_version)
    typer.echo(f"{pv.name} version {pv.version} is now active")


def versions(
    name: Annotated[str | None, typer.Option(help="only this profile")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Every uploaded version: status, proposer, approvers, activation."""
    from archive.governance.versions import list_versions

    with catalog_session() as session:
        rows = list_versions(session, name)
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    print_rows(
        rows, fmt, ["id", "name", "version", "status", "proposed_by", "approved_by", "activated_at"]
    )
