"""`amana profile propose/approve/activate/versions`: the two-steward activation of profiles.

Stewards identify themselves with their API token (`--token` or AMANA_TOKEN), so that the
proposer and the approver are told apart the same way on the command line and over HTTP.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol

import typer

from amana.cli_common import audited_command, cli_record, fail, print_rows, query_record
from amana.errors import RejectError
from amana.startup import load as load_settings

if TYPE_CHECKING:

    from sqlalchemy.orm import Session

    from archive.audit import Action, AuditRecord
    from archive.audit.unit import Work
    from archive.catalog.models_governance import ProfileVersion
    from archive.governance.auth import Principal


TokenOpt = Annotated[
    str,
    typer.Option("--token", envvar="AMANA_TOKEN", help="your steward token (or AMANA_TOKEN)"),
]


def _governance_record(action: Action, step: str) -> AuditRecord:
    """The record of a profile step, as over HTTP: a Security Alert / Security Configuration
    on the profile version. The operator is the actor until the token says which steward."""
    from archive import audit

    return cli_record(
        audit.EventId.SECURITY_ALERT,
        action,
        f"profile {step}",
        event_type=audit.EventType.SECURITY_CONFIGURATION,
        object_type="profile_version",
        step=step,
    )


def _steward(work: Work, token: str) -> Principal:
    """The steward behind `token`; from here on the record names them, as over HTTP, so that
    proposer and approver are told apart the same way everywhere."""
    from archive.governance.auth import Permission, authenticate

    principal = authenticate(work.session, token)
    work.record = dataclasses.replace(
        work.record, actor=principal.token_id, actor_role=principal.role.value
    )
    principal.require(Permission.PROFILES_WRITE)
    return principal


def propose(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="profile YAML")],
    token: TokenOpt,
) -> None:
    """Upload a profile version: validated, diffed against the active one, stored PROPOSED."""
    from archive import audit
    from archive.governance.versions import propose as propose_version

    settings = load_settings()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(RejectError(f"cannot read {file.name}: {type(exc).__name__}")) from exc
    with audited_command(_governance_record(audit.Action.CREATE, "propose")) as work:
        principal = _steward(work, token)
        proposal = propose_version(
            work.session, text, principal, settings.profiles_dir, work=work
        )
        pv = proposal.version
        work.note(object_id=pv.version, profile=pv.name)
        state = "proposed" if proposal.created else "already known"
        headline = f"{pv.name} version {pv.version} {state} (id {pv.id}, status {pv.status.value})"
    typer.echo(headline)
    typer.echo(f"changes against {proposal.against or 'nothing'}: {len(proposal.diff)}")
    for change in proposal.diff[:200]:
        typer.echo(f"  {change['path']}: {change['old']!r} -> {change['new']!r}")
    if len(proposal.diff) > 200:
        typer.echo(f"  … {len(proposal.diff) - 200} more")


class _Step(Protocol):
    def __call__(
        self, session: Session, ref: str | int, principal: Principal, *, work: Work
    ) -> ProfileVersion: ...


def _steward_step(version: str, token: str, step: str, run: _Step) -> tuple[str, Principal]:
    """One approval or activation and its record in one transaction; a refusal (the
    proposer's own approval, a missing second approval, an unknown version) changes nothing
    and leaves one failure event, like the same refusal over HTTP."""
    from archive import audit
    from archive.governance.versions import get_version

    with audited_command(_governance_record(audit.Action.UPDATE, step)) as work:
        principal = _steward(work, token)
        pv = get_version(work.session, version)
        work.note(object_id=pv.version, profile=pv.name)
        pv = run(work.session, pv.id, principal, work=work)
        done = f"{pv.name} version {pv.version} ({pv.status.value})"
    return done, principal


def approve(
    version: Annotated[str, typer.Argument(help="version digest (or prefix) or id")],
    token: TokenOpt,
) -> None:
    """Approve a proposed version (a steward other than its proposer)."""
    from archive.governance.versions import approve as approve_version

    done, principal = _steward_step(version, token, "approve", approve_version)
    typer.echo(f"{done} approved by {principal.token_id}")


def activate(
    version: Annotated[str, typer.Argument(help="version digest (or prefix) or id")],
    token: TokenOpt,
) -> None:
    """Activate an approved version for its profile name; the previous active version of that
    name is retired, and workers switch within AMANA_PROFILE_REFRESH_S for every source of
    that name (and for unattributed jobs when it is AMANA_PROFILE)."""
    from archive.governance.versions import activate as activate_version

    done, _principal = _steward_step(version, token, "activate", activate_version)
    settings = load_settings()
    typer.echo(
        f"{done} is now active; workers use it within {settings.profile_refresh_s:g} s"
        " for the sources that name it"
        + (" and for sources with no profile" if done.startswith(f"{settings.profile} ") else "")
    )


def versions(
    name: Annotated[str | None, typer.Option(help="only this profile")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Every uploaded version: status, proposer, approvers, activation."""
    from archive.governance.versions import list_versions

    with audited_command(query_record("profile versions", "profile_version")) as work:
        rows = list_versions(work.session, name)
        # A name is recorded only when it matched: a mistyped value could be anything.
        work.note(filters={"name": name if rows else "(matched nothing)"} if name else {})
    print_rows(
        rows, fmt, ["id", "name", "version", "status", "proposed_by", "approved_by", "activated_at"]
    )
