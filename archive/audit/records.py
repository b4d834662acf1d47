"""What callers ask the audit trail to record: `AuditRecord`, and the events the pipeline
records built in one place each, so the same happening is always described the same way.

Records carry actors, actions, object ids the system created (new UIDs, job ids, profile
versions) and outcomes. Never a patient value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from archive.audit.codes import Action, EventId, EventType, Outcome


@dataclass(frozen=True)
class AuditRecord:
    """What a caller wants recorded. `detail` holds only ids, codes and counts."""

    event_id: EventId
    action: Action
    actor: str
    outcome: Outcome = Outcome.SUCCESS
    event_type: EventType | None = None
    actor_role: str | None = None
    client_address: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


def instances_received(
    calling_ae: str | None, client_address: str | None, job_ids: Sequence[int]
) -> AuditRecord:
    """The receiver stored instances from a PACS (one event per association)."""
    return AuditRecord(
        event_id=EventId.INSTANCES_TRANSFERRED,
        action=Action.CREATE,
        actor=f"ae:{calling_ae or '-'}",
        client_address=client_address,
        object_type="association",
        object_id=f"jobs:{min(job_ids)}-{max(job_ids)}" if job_ids else None,
        detail={"instances": len(job_ids), "job_ids": list(job_ids)[:1000]},
    )


def association_refused(
    calling_ae: str | None, client_address: str | None, reason: str
) -> AuditRecord:
    """An association from an unregistered AE title or address was refused."""
    return AuditRecord(
        event_id=EventId.SECURITY_ALERT,
        event_type=EventType.NODE_AUTHENTICATION,
        action=Action.EXECUTE,
        outcome=Outcome.MINOR_FAILURE,
        actor=f"ae:{calling_ae or '-'}",
        client_address=client_address,
        object_type="node",
        object_id=calling_ae,
        detail={"reason": reason},
    )


def instances_archived(
    study_uid: str,
    profile_name: str,
    profile_version: str,
    archived: Sequence[tuple[int, str]],
) -> AuditRecord:
    """A worker archived de-identified instances of one study in one commit: one event per
    study and batch, listing each instance as its job id and new SOP Instance UID."""
    return AuditRecord(
        event_id=EventId.INSTANCES_TRANSFERRED,
        action=Action.CREATE,
        actor="worker",
        object_type="study",
        object_id=study_uid,
        detail={
            "instances": len(archived),
            "job_ids": [job_id for job_id, _ in archived],
            "sop_uids": [sop_uid for _, sop_uid in archived],
            "profile": profile_name,
            "profile_version": profile_version,
        },
    )


def job_quarantined(job_id: int, reason_code: str) -> AuditRecord:
    """A worker held an instance back; the message stays in the quarantine table."""
    return AuditRecord(
        event_id=EventId.INSTANCES_TRANSFERRED,
        action=Action.CREATE,
        outcome=Outcome.MINOR_FAILURE,
        actor="worker",
        object_type="job",
        object_id=str(job_id),
        detail={"quarantined": True, "reason": reason_code},
    )


def study_completed(study_uid: str, instances: int) -> AuditRecord:
    """The sweeper closed a study that stopped receiving."""
    return AuditRecord(
        event_id=EventId.INSTANCES_TRANSFERRED,
        action=Action.UPDATE,
        actor="sweeper",
        object_type="study",
        object_id=study_uid,
        detail={"status": "COMPLETE", "instances": instances},
    )


def study_reopened(study_uid: str, instances: int) -> AuditRecord:
    """Instances arrived for a study the sweeper had closed: it is RECEIVING again, and its
    next completion follows this event (never a second completion without one)."""
    return AuditRecord(
        event_id=EventId.INSTANCES_TRANSFERRED,
        action=Action.UPDATE,
        actor="sweeper",
        object_type="study",
        object_id=study_uid,
        detail={"status": "RECEIVING", "reopened": True, "instances": instances},
    )


def unacknowledged_instances_removed(count: int) -> AuditRecord:
    """A receiver removed partial instances an earlier one left in the spool (in tmp/, or
    renamed in but cut short by a power cut): never answered Success, so their senders send
    them again. Counts only."""
    return AuditRecord(
        event_id=EventId.STUDY_DELETED,
        action=Action.DELETE,
        actor="receiver",
        object_type="spool",
        object_id="tmp",
        detail={"removed": count, "reason": "unacknowledged"},
    )


def application_activity(component: str, *, started: bool) -> AuditRecord:
    return AuditRecord(
        event_id=EventId.APPLICATION_ACTIVITY,
        event_type=EventType.APPLICATION_START if started else EventType.APPLICATION_STOP,
        action=Action.EXECUTE,
        actor=component,
        object_type="application",
        object_id=component,
    )


def quarantine_action(
    actor: str,
    entry_id: int,
    step: str,
    *,
    actor_role: str | None = None,
    client_address: str | None = None,
) -> AuditRecord:
    """A steward retried, released or purged a quarantined original."""
    return AuditRecord(
        event_id=EventId.SECURITY_ALERT,
        event_type=EventType.USE_OF_RESTRICTED_FUNCTION,
        action=Action.DELETE if step in ("purge", "release") else Action.UPDATE,
        actor=actor,
        actor_role=actor_role,
        client_address=client_address,
        object_type="quarantine",
        object_id=str(entry_id),
        detail={"step": step},
    )
