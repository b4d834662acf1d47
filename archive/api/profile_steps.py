"""The stewards' profile steps with an upload, one function each, shared by the API's
routes and the console's forms: the audit event, reading the upload within its limits,
the governance call and its record in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request, UploadFile
from sqlalchemy.orm import Session

from anonymizer.errors import RejectError
from archive import audit
from archive.api.deps import ApiState, AuditContext, unit
from archive.catalog.models_governance import ProfileVersion
from archive.governance import versions as governance
from archive.governance.auth import Principal
from archive.governance.versions import Proposal

MAX_SAMPLE_BYTES = 64 * 1024 * 1024


def configuration_change(ctx: AuditContext, action: audit.Action) -> None:
    """The event of a step that changes which rules protect patients."""
    ctx.set(
        audit.EventId.SECURITY_ALERT,
        action,
        event_type=audit.EventType.SECURITY_CONFIGURATION,
        object_type="profile_version",
    )


Step = Callable[..., ProfileVersion]


def advance(
    step: Step,
    request: Request,
    ctx: AuditContext,
    session: Session,
    who: Principal,
    ref: str | int,
    *,
    confirmed: bool = True,
) -> dict[str, Any]:
    """Approve or activate a version (`step`: governance.approve or .activate, which apply
    the four-eyes rule); returns its row."""
    configuration_change(ctx, audit.Action.UPDATE)
    if not confirmed:
        raise RejectError("confirm first", code="bad_request")
    with unit(request, ctx, session) as work:
        pv = step(session, ref, who, work=work)
        work.note(object_id=pv.version)
        return governance.version_row(pv)


def propose(
    request: Request,
    ctx: AuditContext,
    session: Session,
    state: ApiState,
    who: Principal,
    upload: UploadFile,
) -> Proposal:
    """Validate an uploaded profile with the workers' loader, diff it, store it PROPOSED."""
    configuration_change(ctx, audit.Action.CREATE)
    with unit(request, ctx, session) as work:
        data = upload.file.read(governance.MAX_PROFILE_BYTES + 1)
        try:
            yaml_text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RejectError("profile must be UTF-8 text", code="invalid_profile") from exc
        return governance.propose(session, yaml_text, who, state.profiles_dir, work=work)


def dry_run(
    request: Request,
    ctx: AuditContext,
    session: Session,
    state: ApiState,
    ref: str | int,
    samples: list[UploadFile],
) -> dict[str, Any]:
    """A version on sample files: explain table (before-values masked), outcome and the
    masked picture for each. Nothing is archived; the samples' values are returned, never
    recorded."""
    ctx.set(
        audit.EventId.APPLICATION_ACTIVITY,
        audit.Action.EXECUTE,
        object_type="profile_version",
        samples=len(samples),
    )
    with unit(request, ctx, session) as work:
        pv = governance.get_version(session, ref)
        work.note(object_id=pv.version)
        profile = governance.load_profile_text(pv.yaml_text, state.profiles_dir)
        budget = MAX_SAMPLE_BYTES
        files: list[tuple[str, bytes]] = []
        for index, upload in enumerate(samples):
            data = upload.file.read(budget + 1)
            budget -= len(data)
            if budget < 0:
                raise RejectError("samples larger than 64 MB in total", code="too_large")
            files.append((f"sample-{index + 1}", data))
        results = governance.dry_run(profile, files)
        work.note(outcomes=[r["result"] for r in results])
        return {"version": pv.version, "name": pv.name, "results": results}
