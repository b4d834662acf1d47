"""The stewards' steps on a held original, one function each, shared by the API's routes
and the console's forms: the audit event, the configuration check, the change and its
record in one transaction. The console adds its CSRF check and confirmation box before;
both answer in their own way after."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from sqlalchemy.orm import Session

from anonymizer.errors import RejectError, RetryableError
from anonymizer.pixels.preview import InstancePreview
from archive import audit
from archive.api.deps import ApiState, AuditContext, unit
from archive.work import quarantine as quarantine_ops
from archive.work.publish import enqueue_after_commit
from archive.work.quarantine_preview import preview_entry

_ACTIONS = {
    "retry": audit.Action.UPDATE,
    "purge": audit.Action.DELETE,
    "release": audit.Action.DELETE,
}


def _declare(ctx: AuditContext, step: str, confirmed: bool) -> None:
    """The step's event (recorded as refused if what follows refuses), then the
    confirmation the console asks for."""
    ctx.set(
        audit.EventId.SECURITY_ALERT,
        _ACTIONS[step],
        event_type=audit.EventType.USE_OF_RESTRICTED_FUNCTION,
        object_type="quarantine",
        step=step,
    )
    if not confirmed:
        raise RejectError(f"confirm the {step}", code="bad_request")


def _configured(value: Path | None) -> Path:
    if value is None:
        raise RetryableError("quarantine actions are not configured on this API")
    return value


@dataclass(frozen=True)
class Retried:
    job_id: int
    queued: bool


def retry(
    request: Request,
    ctx: AuditContext,
    session: Session,
    state: ApiState,
    entry_id: int,
    *,
    confirmed: bool = True,
) -> Retried:
    """Send a held original through the pipeline again."""
    _declare(ctx, "retry", confirmed)
    quarantine_dir, spool_dir = _configured(state.quarantine_dir), _configured(state.spool_dir)
    with unit(request, ctx, session) as work:
        job_id = quarantine_ops.retry(
            session,
            entry_id,
            quarantine_dir=quarantine_dir,
            spool_dir=spool_dir,
            node=state.node,
        )
        # Sent by the session's job sink once this transaction (the record with it) commits.
        enqueue_after_commit(session, [job_id])
        work.note(object_id=str(entry_id), job_id=job_id)
    return Retried(job_id, state.sent.take(job_id) if state.sent is not None else False)


def purge(
    request: Request,
    ctx: AuditContext,
    session: Session,
    state: ApiState,
    entry_id: int,
    *,
    confirmed: bool = True,
) -> None:
    """Delete a held original for good; the entry, its reason and its fate stay."""
    _declare(ctx, "purge", confirmed)
    quarantine_dir = _configured(state.quarantine_dir)
    with unit(request, ctx, session) as work:
        quarantine_ops.purge(session, entry_id, quarantine_dir=quarantine_dir)
        work.note(object_id=str(entry_id))


def release(
    request: Request,
    ctx: AuditContext,
    session: Session,
    state: ApiState,
    entry_id: int,
    *,
    confirmed: bool = True,
) -> str:
    """Hand a held original out of Amana into the release folder (AMANA_RELEASE_DIR), as
    `amana quarantine release --to` does; returns the released file's name."""
    _declare(ctx, "release", confirmed)
    quarantine_dir, release_dir = _configured(state.quarantine_dir), _configured(state.release_dir)
    with unit(request, ctx, session) as work:
        out = quarantine_ops.release(
            session, entry_id, quarantine_dir=quarantine_dir, dest_dir=release_dir
        )
        work.note(object_id=str(entry_id), released_as=out.name)
    return out.name


def preview(
    request: Request, ctx: AuditContext, session: Session, state: ApiState, entry_id: int
) -> tuple[InstancePreview, str]:
    """The before/after picture of a held original (its pixels and the words OCR read in
    them), recorded as an access to the instance by the steward who asked. The picture is
    made inside the unit: if it fails, the view is recorded as failed."""
    ctx.set(
        audit.EventId.INSTANCES_ACCESSED,
        audit.Action.READ,
        object_type="quarantine",
        view="original-preview",
    )
    quarantine_dir = _configured(state.quarantine_dir)
    with unit(request, ctx, session) as work:
        work.note(object_id=str(entry_id))
        pictured, version = preview_entry(
            session,
            entry_id,
            quarantine_dir=quarantine_dir,
            profiles_dir=state.profiles_dir,
            default_profile=state.default_profile,
        )
        work.note(outcome=pictured.outcome, profile_version=version)
    return pictured, version
