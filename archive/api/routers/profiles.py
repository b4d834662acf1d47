"""Profile governance for stewards: versions, upload, dry run, approval, activation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile

from archive import audit
from archive.api import profile_steps as steps
from archive.api.deps import (
    AuditDep,
    ProfileReader,
    ProfileWriter,
    SessionDep,
    StateDep,
    filters_for_audit,
    unit,
)
from archive.api.schemas import DryRunOut, ProfileVersionDetail, ProfileVersionOut, ProposalOut
from archive.governance import versions as governance

router = APIRouter(tags=["profiles"])

@router.get("/profiles", response_model=list[ProfileVersionOut])
def profile_versions(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    _who: ProfileReader,
    name: Annotated[str | None, Query(max_length=64)] = None,
) -> list[ProfileVersionOut]:
    """Every version (the shipped ones registered by `system` included) with its status
    (PROPOSED, APPROVED, ACTIVE, RETIRED), proposer, approvers and activation."""
    ctx.set(audit.EventId.QUERY, audit.Action.EXECUTE, object_type="profile_version")
    with unit(request, ctx, session) as work:
        rows = governance.list_versions(session, name)
        work.note(filters=filters_for_audit(bool(rows), {}, {"name": name}))
    return [ProfileVersionOut.model_validate(row) for row in rows]


@router.get("/profiles/{ref}", response_model=ProfileVersionDetail)
def profile_version(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    state: StateDep,
    _who: ProfileReader,
    ref: str,
) -> ProfileVersionDetail:
    """One version: its YAML text and its differences from the active version."""
    ctx.set(audit.EventId.QUERY, audit.Action.READ, object_type="profile_version")
    with unit(request, ctx, session) as work:
        pv = governance.get_version(session, ref)
        work.note(object_id=pv.version)
        profile = governance.load_profile_text(pv.yaml_text, state.profiles_dir)
        active = governance.active_version_row(session, pv.name)
        baseline = (
            governance.load_profile_text(active.yaml_text, state.profiles_dir)
            if active is not None and active.id != pv.id
            else None
        )
        detail = {
            **governance.version_row(pv),
            "yaml": pv.yaml_text,
            "diff_against_active": governance.profile_diff(baseline, profile)
            if baseline is not None
            else [],
        }
    return ProfileVersionDetail.model_validate(detail)


@router.post("/profiles", status_code=201, response_model=ProposalOut)
def propose_profile(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    state: StateDep,
    who: ProfileWriter,
    profile: Annotated[UploadFile, File(description="the profile YAML")],
) -> ProposalOut:
    """Upload a profile: validated with the workers' loader, diffed, stored as PROPOSED."""
    proposal = steps.propose(request, ctx, session, state, who, profile)
    answer = {
        **governance.version_row(proposal.version),
        "created": proposal.created,
        "against": proposal.against,
        "diff": proposal.diff,
    }
    return ProposalOut.model_validate(answer)


@router.post("/profiles/{ref}/dry-run", response_model=DryRunOut, response_model_exclude_unset=True)
def dry_run(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    state: StateDep,
    _who: ProfileWriter,
    ref: str,
    samples: Annotated[list[UploadFile], File(description="DICOM files to try")],
) -> DryRunOut:
    """Run a version on sample files: explain table, outcome and pixel preview for each.
    Nothing is archived; the samples' values are returned, never recorded."""
    return DryRunOut.model_validate(steps.dry_run(request, ctx, session, state, ref, samples))


@router.post("/profiles/{ref}/approve", response_model=ProfileVersionOut)
def approve_profile(
    request: Request, session: SessionDep, ctx: AuditDep, who: ProfileWriter, ref: str
) -> ProfileVersionOut:
    """Approve a proposed version (a steward other than its proposer)."""
    row = steps.advance(governance.approve, request, ctx, session, who, ref)
    return ProfileVersionOut.model_validate(row)


@router.post("/profiles/{ref}/activate", response_model=ProfileVersionOut)
def activate_profile(
    request: Request, session: SessionDep, ctx: AuditDep, who: ProfileWriter, ref: str
) -> ProfileVersionOut:
    """Make an approved version the active one of its profile name (the previous one is
    retired); workers use it within AMANA_PROFILE_REFRESH_S for every source of that name."""
    row = steps.advance(governance.activate, request, ctx, session, who, ref)
    return ProfileVersionOut.model_validate(row)
