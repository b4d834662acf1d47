"""Profile governance: propose, review, approve by a second steward, activate.

A version is the digest the profile loader computes over the resolved profile, so the
version recorded with every archived instance names exactly the rules that processed it.
A proposal is validated by the same loader the workers use; activation needs the approval
of a person other than the proposer (users, not tokens: `four_eyes_refusal`); workers poll
for the active version.

Beside this module: profile_text (loading and diffing an uploaded text), watcher (the active
version and the workers that follow it), dry_run (a version tried on sample files).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from anonymizer.engine import ProfileError, load_profile
from anonymizer.errors import RejectError
from anonymizer.profile_model import Profile
from archive.audit.unit import Work
from archive.catalog.models_governance import ProfileApproval, ProfileVersion, ProfileVersionStatus
from archive.governance.auth import Principal, user_of_token
from archive.governance.dry_run import dry_run
from archive.governance.profile_text import (
    MAX_PROFILE_BYTES,
    NAME_PATTERN,
    load_profile_text,
    profile_diff,
    profile_name_of,
)
from archive.governance.watcher import (
    ActiveProfile,
    ActiveProfileWatcher,
    active_profile,
    active_version_row,
    refresh_deidentifier,
)
from archive.work.jobs import utcnow

# The governance API and CLI import everything from here; the pieces live beside it.
__all__ = [
    "MAX_PROFILE_BYTES",
    "NAME_PATTERN",
    "REQUIRED_APPROVALS",
    "ActiveProfile",
    "ActiveProfileWatcher",
    "ApprovalRequired",
    "Proposal",
    "activate",
    "active_profile",
    "active_version_row",
    "baseline_of",
    "approve",
    "dry_run",
    "four_eyes_refusal",
    "get_version",
    "is_approved",
    "list_versions",
    "load_profile_text",
    "profile_diff",
    "profile_name_of",
    "propose",
    "refresh_deidentifier",
    "version_row",
]

log = logging.getLogger(__name__)

# Approvals needed from people other than the proposer before activation.
REQUIRED_APPROVALS = 1


def four_eyes_refusal(
    session: Session, pv: ProfileVersion, approver: Principal | None = None
) -> str | None:
    """The one approval rule, in people: why `approver` may not approve `pv` (or, without an
    approver, why `pv` may not be activated yet), None when four eyes hold.

    Proposals and approvals record token ids; each is taken back to the user who holds the
    token, so one person with two tokens (an admin could mint them) is still one person.
    A token id no user holds (none should exist) stands for itself."""

    def person(token_id: str) -> str:
        user_id = user_of_token(session, token_id)
        return f"user:{user_id}" if user_id is not None else f"token:{token_id}"

    proposer = person(pv.proposed_by)
    approvers = {person(a.approved_by) for a in pv.approvals}
    if approver is not None:
        me = f"user:{approver.user_id}"
        if me == proposer:
            return "proposer cannot approve"
        if me in approvers:
            return "already approved"
        return None
    if len(approvers - {proposer}) < REQUIRED_APPROVALS:
        return "second approval missing"
    return None


class ApprovalRequired(RejectError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="conflict")


# --- versions -------------------------------------------------------------------------------


def version_row(pv: ProfileVersion) -> dict[str, Any]:
    return {
        "id": pv.id,
        "name": pv.name,
        "version": pv.version,
        "status": pv.status.value,
        "proposed_by": pv.proposed_by,
        "proposed_at": pv.proposed_at.isoformat() if pv.proposed_at else None,
        "approved_by": [a.approved_by for a in pv.approvals],
        "activated_by": pv.activated_by,
        "activated_at": pv.activated_at.isoformat() if pv.activated_at else None,
    }


def list_versions(session: Session, name: str | None = None) -> list[dict[str, Any]]:
    query = select(ProfileVersion).order_by(ProfileVersion.id)
    if name:
        query = query.where(ProfileVersion.name == name)
    return [version_row(pv) for pv in session.scalars(query)]


def get_version(session: Session, ref: str | int) -> ProfileVersion:
    """By row id, by version digest or by a unique prefix of the digest."""
    text = str(ref)
    found: ProfileVersion | None = None
    if text.isdigit() and len(text) < 10:
        found = session.get(ProfileVersion, int(text))
    if found is None:
        matches = session.scalars(
            select(ProfileVersion).where(ProfileVersion.version.startswith(text, autoescape=True))
        ).all()
        if len(matches) > 1:
            raise RejectError(f"{text!r} names several versions; give more digits", code="conflict")
        found = matches[0] if matches else None
    if found is None:
        raise RejectError(f"no profile version {text!r}", code="not_found")
    return found


@dataclass(frozen=True)
class Proposal:
    version: ProfileVersion
    created: bool
    diff: list[dict[str, Any]]
    against: str | None


def propose(
    session: Session,
    yaml_text: str,
    principal: Principal,
    profiles_dir: Path,
    *,
    work: Work,
) -> Proposal:
    """Validate, diff against the active version (or the file on disk), store as PROPOSED."""
    try:
        profile = load_profile_text(yaml_text, profiles_dir)
    except RejectError:
        _note(work, None, {"result": "invalid"})
        raise
    baseline, against = baseline_of(session, profile.name, profiles_dir)
    diff = profile_diff(baseline, profile)
    existing = session.scalars(
        select(ProfileVersion).where(
            ProfileVersion.name == profile.name, ProfileVersion.version == profile.version
        )
    ).first()
    created = existing is None
    if existing is None:
        existing = ProfileVersion(
            name=profile.name,
            version=profile.version,
            yaml_text=yaml_text,
            status=ProfileVersionStatus.PROPOSED,
            proposed_by=principal.token_id,
            proposed_at=utcnow(),
        )
        session.add(existing)
        session.flush()
    _note(
        work,
        existing,
        {"step": "propose", "new": created, "changes": len(diff), "against": against},
    )
    return Proposal(existing, created, diff, against)


def baseline_of(
    session: Session, name: str, profiles_dir: Path
) -> tuple[Profile | None, str | None]:
    """What a proposal of `name` is compared with: the active version, else the file on disk."""
    row = active_version_row(session, name)
    if row is not None:
        try:
            return load_profile_text(row.yaml_text, profiles_dir), row.version
        except RejectError:
            log.warning("active profile version %s no longer loads", row.version)
    try:
        on_disk = load_profile(name, profiles_dir)
    except ProfileError:
        return None, None
    return on_disk, on_disk.version


def is_approved(session: Session, pv: ProfileVersion) -> bool:
    """Whether enough people other than the proposer approved `pv`: the one place the
    approval count is compared (the status APPROVED and activation both ask here)."""
    return four_eyes_refusal(session, pv) is None


def approve(
    session: Session,
    ref: str | int,
    principal: Principal,
    *,
    work: Work,
) -> ProfileVersion:
    """Approve a PROPOSED version (or a RETIRED one never approved, such as a built-in, so
    that it may be activated again); enough approvals make a proposal APPROVED."""
    pv = get_version(session, ref)
    retired_unapproved = pv.status == ProfileVersionStatus.RETIRED and not is_approved(session, pv)
    if pv.status != ProfileVersionStatus.PROPOSED and not retired_unapproved:
        raise RejectError(
            f"version {pv.version} is {pv.status.value}, not PROPOSED", code="conflict"
        )
    refusal = four_eyes_refusal(session, pv, principal)
    if refusal == "already approved":
        raise RejectError("already approved by this steward", code="conflict")
    if refusal is not None:
        raise _refused(
            work,
            pv,
            ("approve", refusal),
            "a profile version must be approved by a person other than the one who proposed"
            " it, whichever of their tokens they use",
        )
    try:
        with session.begin_nested():
            session.add(
                ProfileApproval(
                    profile_version_id=pv.id, approved_by=principal.token_id, approved_at=utcnow()
                )
            )
    except IntegrityError as exc:
        raise RejectError("already approved by this steward", code="conflict") from exc
    session.refresh(pv)
    if pv.status == ProfileVersionStatus.PROPOSED and is_approved(session, pv):
        pv.status = ProfileVersionStatus.APPROVED
        session.flush()
    _note(work, pv, {"step": "approve", "status": pv.status.value})
    return pv


def activate(
    session: Session,
    ref: str | int,
    principal: Principal,
    *,
    work: Work,
) -> ProfileVersion:
    """Make a version the active one for its name; the previous active one of that name is
    retired. Workers resolve a source's profile name to its active version, so this changes
    what every source of that name gets, whatever AMANA_PROFILE says.

    A refusal raises; the caller's unit of work records it."""
    pv = get_version(session, ref)
    if pv.status == ProfileVersionStatus.ACTIVE:
        return pv
    # A RETIRED version was approved before: activating it again is a rollback, under the
    # same approval rule below.
    refusal = four_eyes_refusal(session, pv)
    if refusal is not None:
        raise _refused(
            work,
            pv,
            ("activate", refusal),
            f"version {pv.version} needs the approval of a second steward before activation",
        )
    now = utcnow()
    # Locked, so two activations of one name at once cannot both retire the same row; the
    # partial unique index refuses a second ACTIVE row should anything get past this.
    previous = session.scalars(
        select(ProfileVersion)
        .where(ProfileVersion.name == pv.name, ProfileVersion.status == ProfileVersionStatus.ACTIVE)
        .with_for_update()
    ).all()
    for old in previous:
        old.status = ProfileVersionStatus.RETIRED
        old.retired_at = now
    # Retire first: the index holds at every statement, not only at the commit.
    session.flush()
    pv.status = ProfileVersionStatus.ACTIVE
    pv.activated_by = principal.token_id
    pv.activated_at = now
    session.flush()
    _note(work, pv, {"step": "activate", "replaces": previous[0].version if previous else None})
    return pv


def _refused(
    work: Work, pv: ProfileVersion, step_and_reason: tuple[str, str], message: str
) -> ApprovalRequired:
    """The error to raise for a refused step, its reason noted on the caller's unit of
    work, which records the refusal (so attempts to bypass four eyes stay visible)."""
    step, reason = step_and_reason
    _note(work, pv, {"step": step, "reason": reason})
    return ApprovalRequired(message)


def _note(work: Work, pv: ProfileVersion | None, detail: dict[str, Any]) -> None:
    """A governance step's details on the caller's audited unit of work: the step and its
    one audit event are a single transaction (the unit writes a refusal's code itself,
    under "refused")."""
    if pv is not None:
        detail = {"profile": pv.name, **detail}
    work.note(object_id=pv.version if pv is not None else None, **detail)
