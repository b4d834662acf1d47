"""Profile governance pages: versions, a proposal's differences from the active version,
and the four-eyes rule shown before anyone clicks (archive.governance.versions decides)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from anonymizer.errors import RejectError
from archive import audit
from archive.api import profile_steps as steps
from archive.api.deps import AuditContext, AuditDep, SessionDep, StateDep, unit
from archive.api.params import RowId
from archive.console.session import ConsoleSession
from archive.console.web import PREFIX, ConsoleDep, page, require_csrf
from archive.governance import versions as governance
from archive.governance.auth import Permission, Principal
from archive.governance.profile_text import lint_problems

router = APIRouter(prefix=PREFIX, include_in_schema=False)

Who = tuple[Principal, ConsoleSession]
ProfileRead = Annotated[Who, Depends(page(Permission.PROFILES_READ))]
ProfileWrite = Annotated[Who, Depends(page(Permission.PROFILES_WRITE))]
Csrf = Annotated[str, Form(max_length=100)]


@router.get("/profiles")
def versions(
    request: Request, session: SessionDep, ctx: AuditDep, console: ConsoleDep, who: ProfileRead
) -> Response:
    ctx.set(audit.EventId.QUERY, audit.Action.EXECUTE, object_type="profile_version")
    with unit(request, ctx, session):
        rows = governance.list_versions(session)
    return console.render(
        request, "profiles.html", principal=who[0], session=who[1], rows=rows, error=None
    )


def _refused_proposal(
    request: Request, session: SessionDep, console: ConsoleDep, who: Who, error: str
) -> Response:
    """The list again with the loader's refusal (file, line, reason: the lint result), so
    the steward fixes the file without a terminal. Read outside the audited unit: the
    refusal itself is the request's record."""
    session.rollback()
    rows = governance.list_versions(session)
    return console.render(
        request,
        "profiles.html",
        status_code=422,
        principal=who[0],
        session=who[1],
        rows=rows,
        error=error,
    )


@router.get("/profiles/{version_id}")
def version(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    console: ConsoleDep,
    state: StateDep,
    who: ProfileRead,
    version_id: RowId,
) -> Response:
    """One version: its differences from the active one, and who may still approve it."""
    ctx.set(audit.EventId.QUERY, audit.Action.READ, object_type="profile_version")
    with unit(request, ctx, session) as work:
        pv = governance.get_version(session, version_id)
        work.note(object_id=pv.version)
        profile = governance.load_profile_text(pv.yaml_text, state.profiles_dir)
        # Compared with what the proposal was compared with: the active version, else the
        # shipped file.
        baseline, against = governance.baseline_of(session, pv.name, state.profiles_dir)
        diff = (
            governance.profile_diff(baseline, profile)
            if baseline is not None and against != pv.version
            else []
        )
        row = governance.version_row(pv)
        my_refusal = (
            governance.four_eyes_refusal(session, pv, who[0])
            if who[0].can(Permission.PROFILES_WRITE)
            else None
        )
        activation_refusal = governance.four_eyes_refusal(session, pv)
        lint = lint_problems(profile)
    return console.render(
        request,
        "profile.html",
        principal=who[0],
        session=who[1],
        pv=row,
        against=against,
        diff=diff,
        my_refusal=my_refusal,
        activation_refusal=activation_refusal,
        lint=lint,
    )


@router.post("/profiles")
def propose(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    console: ConsoleDep,
    state: StateDep,
    who: ProfileWrite,
    csrf: Csrf,
    profile: Annotated[UploadFile, File()],
) -> Response:
    require_csrf(who[1], csrf)
    try:
        proposal = steps.propose(request, ctx, session, state, who[0], profile)
    except RejectError as refusal:
        if refusal.code != "invalid_profile":
            raise
        return _refused_proposal(request, session, console, who, str(refusal))
    return RedirectResponse(f"{PREFIX}/profiles/{proposal.version.id}", status_code=303)


@router.post("/profiles/{version_id}/dry-run")
def dry_run(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    console: ConsoleDep,
    state: StateDep,
    who: ProfileWrite,
    version_id: RowId,
    csrf: Csrf,
    samples: Annotated[list[UploadFile], File()],
) -> Response:
    """The API's dry run on uploaded samples, shown as a page: per sample the outcome, the
    explain table with masked before-values, and the masked picture (never the original)."""
    require_csrf(who[1], csrf)
    answer = steps.dry_run(request, ctx, session, state, version_id, samples)
    return console.render(
        request,
        "profile_dry_run.html",
        principal=who[0],
        session=who[1],
        version_id=version_id,
        answer=answer,
    )


def _step(
    step: steps.Step,
    request: Request,
    session: SessionDep,
    ctx: AuditContext,
    who: Who,
    version_id: int,
    csrf: str,
    confirm: str | None,
) -> Response:
    require_csrf(who[1], csrf)
    steps.advance(step, request, ctx, session, who[0], version_id, confirmed=confirm == "yes")
    return RedirectResponse(f"{PREFIX}/profiles/{version_id}", status_code=303)


@router.post("/profiles/{version_id}/approve")
def approve(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    who: ProfileWrite,
    version_id: RowId,
    csrf: Csrf,
    confirm: Annotated[str | None, Form(max_length=8)] = None,
) -> Response:
    return _step(governance.approve, request, session, ctx, who, version_id, csrf, confirm)


@router.post("/profiles/{version_id}/activate")
def activate(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    who: ProfileWrite,
    version_id: RowId,
    csrf: Csrf,
    confirm: Annotated[str | None, Form(max_length=8)] = None,
) -> Response:
    return _step(governance.activate, request, session, ctx, who, version_id, csrf, confirm)
