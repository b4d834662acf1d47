"""Profile governance pages: versions, a proposal's differences from the active version,
and the four-eyes rule shown before anyone clicks (archive.governance.versions decides)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from anonymizer.errors import RejectError
from archive import audit
from archive.api.deps import AuditContext, AuditDep, SessionDep, StateDep, unit
from archive.api.params import RowId
from archive.catalog.models_governance import ProfileVersion
from archive.console.session import ConsoleSession
from archive.console.web import PREFIX, ConsoleDep, page, require_csrf
from archive.governance import versions as governance
from archive.governance.auth import Permission, Principal

router = APIRouter(prefix=PREFIX, include_in_schema=False)

Who = tuple[Principal, ConsoleSession]
ProfileRead = Annotated[Who, Depends(page(Permission.PROFILES_READ))]
ProfileWrite = Annotated[Who, Depends(page(Permission.PROFILES_WRITE))]
Csrf = Annotated[str, Form(max_length=100)]
Step = Callable[..., ProfileVersion]


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
    )


def _change(ctx: AuditContext, action: audit.Action) -> None:
    ctx.set(
        audit.EventId.SECURITY_ALERT,
        action,
        event_type=audit.EventType.SECURITY_CONFIGURATION,
        object_type="profile_version",
    )


@router.post("/profiles")
def propose(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    state: StateDep,
    who: ProfileWrite,
    csrf: Csrf,
    profile: Annotated[UploadFile, File()],
) -> Response:
    require_csrf(who[1], csrf)
    _change(ctx, audit.Action.CREATE)
    with unit(request, ctx, session) as work:
        data = profile.file.read(governance.MAX_PROFILE_BYTES + 1)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RejectError("profile must be UTF-8 text", code="invalid_profile") from exc
        proposal = governance.propose(session, text, who[0], state.profiles_dir, work=work)
        version_id = proposal.version.id
    return RedirectResponse(f"{PREFIX}/profiles/{version_id}", status_code=303)


def _step(
    step: Step,
    request: Request,
    session: SessionDep,
    ctx: AuditContext,
    who: Who,
    version_id: int,
    csrf: str,
    confirm: str | None,
) -> Response:
    require_csrf(who[1], csrf)
    _change(ctx, audit.Action.UPDATE)
    if confirm != "yes":
        raise RejectError("confirm first", code="bad_request")
    with unit(request, ctx, session) as work:
        pv = step(session, version_id, who[0], work=work)
        work.note(object_id=pv.version)
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
