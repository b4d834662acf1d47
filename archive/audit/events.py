"""The audit trail: append-only, hash-chained, in the DICOM audit vocabulary (PS3.15 A.5).

Each event stores the hash of the one before it, so changing, deleting, inserting or
reordering a row breaks the chain at that row, and `verify` names it. Appends take the
single `audit_head` row first (a row lock on PostgreSQL, the write lock on SQLite), so any
number of processes append to one chain.

Events describe actors (token ids, roles, AE titles, client addresses), actions, object ids
(new UIDs, job ids, profile versions) and outcomes. Never a patient value: callers pass only
identifiers the system created.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.errors import RetryableError
from archive.catalog.models_governance import AuditEvent, AuditHead

GENESIS_HASH = "0" * 64
HEAD_ID = 1


class AuditUnavailable(RetryableError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="audit_unavailable")


class EventId(StrEnum):
    """PS3.15 A.5.3 audit events (DCM codes, CID 400)."""

    APPLICATION_ACTIVITY = "110100"
    AUDIT_LOG_USED = "110101"
    BEGIN_TRANSFERRING = "110102"
    INSTANCES_ACCESSED = "110103"
    INSTANCES_TRANSFERRED = "110104"
    STUDY_DELETED = "110105"
    EXPORT = "110106"
    IMPORT = "110107"
    NETWORK_ENTRY = "110108"
    QUERY = "110112"
    SECURITY_ALERT = "110113"
    USER_AUTHENTICATION = "110114"


EVENT_NAMES: dict[str, str] = {
    EventId.APPLICATION_ACTIVITY: "Application Activity",
    EventId.AUDIT_LOG_USED: "Audit Log Used",
    EventId.BEGIN_TRANSFERRING: "Begin Transferring DICOM Instances",
    EventId.INSTANCES_ACCESSED: "DICOM Instances Accessed",
    EventId.INSTANCES_TRANSFERRED: "DICOM Instances Transferred",
    EventId.STUDY_DELETED: "DICOM Study Deleted",
    EventId.EXPORT: "Export",
    EventId.IMPORT: "Import",
    EventId.NETWORK_ENTRY: "Network Entry",
    EventId.QUERY: "Query",
    EventId.SECURITY_ALERT: "Security Alert",
    EventId.USER_AUTHENTICATION: "User Authentication",
}


class EventType(StrEnum):
    """Event type codes that qualify some events (CID 401, 402, 403)."""

    APPLICATION_START = "110120"
    APPLICATION_STOP = "110121"
    LOGIN = "110122"
    LOGOUT = "110123"
    NODE_AUTHENTICATION = "110126"
    NETWORK_CONFIGURATION = "110128"
    SECURITY_CONFIGURATION = "110129"
    SOFTWARE_CONFIGURATION = "110131"
    USE_OF_RESTRICTED_FUNCTION = "110132"
    SECURITY_ROLES_CHANGED = "110136"
    USER_SECURITY_ATTRIBUTES_CHANGED = "110137"


EVENT_TYPE_NAMES: dict[str, str] = {
    EventType.APPLICATION_START: "Application Start",
    EventType.APPLICATION_STOP: "Application Stop",
    EventType.LOGIN: "Login",
    EventType.LOGOUT: "Logout",
    EventType.NODE_AUTHENTICATION: "Node Authentication",
    EventType.NETWORK_CONFIGURATION: "Network Configuration",
    EventType.SECURITY_CONFIGURATION: "Security Configuration",
    EventType.SOFTWARE_CONFIGURATION: "Software Configuration",
    EventType.USE_OF_RESTRICTED_FUNCTION: "Use of Restricted Function",
    EventType.SECURITY_ROLES_CHANGED: "Security Roles Changed",
    EventType.USER_SECURITY_ATTRIBUTES_CHANGED: "User Security Attributes Changed",
}


class Action(StrEnum):
    """Event Action Code."""

    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"


class Outcome(IntEnum):
    """Event Outcome Indicator."""

    SUCCESS = 0
    MINOR_FAILURE = 4
    SERIOUS_FAILURE = 8
    MAJOR_FAILURE = 12


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


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical_detail(detail: Mapping[str, Any]) -> str:
    return json.dumps(
        detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def event_hash(event: AuditEvent) -> str:
    """The SHA-256 of every stored field but the hash itself, in a fixed order."""
    fields = [
        event.seq,
        event.occurred_at,
        event.event_id,
        event.event_type,
        event.action,
        event.outcome,
        event.actor,
        event.actor_role,
        event.client_address,
        event.object_type,
        event.object_id,
        event.detail,
        event.prev_hash,
    ]
    payload = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def append(session: Session, record: AuditRecord) -> AuditEvent:
    """Add one event to the chain in the caller's transaction (committed with it).

    The first statement is the UPDATE of the head row: on PostgreSQL it takes the row lock,
    on SQLite it opens the transaction with the write lock, so the read of the previous hash
    that follows cannot race another appender.
    """
    session.execute(
        update(AuditHead)
        .where(AuditHead.id == HEAD_ID)
        .values(last_seq=AuditHead.last_seq + 1)
        .execution_options(synchronize_session=False)
    )
    head = session.execute(
        select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == HEAD_ID)
    ).first()
    if head is None:
        # Never start a second chain silently: nothing is recorded until someone looks.
        raise AuditUnavailable("the audit head row is missing; run `amana audit verify`")
    seq, prev_hash = head
    event = AuditEvent(
        seq=seq,
        occurred_at=_now_text(),
        event_id=record.event_id.value,
        event_type=record.event_type.value if record.event_type else None,
        action=record.action.value,
        outcome=int(record.outcome),
        actor=record.actor[:64],
        actor_role=record.actor_role,
        client_address=record.client_address,
        object_type=record.object_type,
        object_id=record.object_id,
        detail=_canonical_detail(record.detail),
        prev_hash=prev_hash,
    )
    event.hash = event_hash(event)
    session.add(event)
    session.execute(
        update(AuditHead)
        .where(AuditHead.id == HEAD_ID)
        .values(last_hash=event.hash)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return event


def record(sessions: sessionmaker[Session], audit: AuditRecord) -> AuditEvent:
    """Append in a transaction of its own (for callers with nothing else to commit)."""
    with sessions.begin() as session:
        return append(session, audit)


# --- verification -------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    seq: int
    row_id: int | None
    reason: str

    def __str__(self) -> str:
        where = f"seq {self.seq}" + (f" (row id {self.row_id})" if self.row_id is not None else "")
        return f"audit event {where}: {self.reason}"


@dataclass
class VerifyReport:
    checked: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "problems": [
                {"seq": p.seq, "row_id": p.row_id, "reason": p.reason} for p in self.problems
            ],
        }


def verify(
    session: Session, *, anchor: tuple[int, str] | None = None, max_problems: int = 100
) -> VerifyReport:
    """Walk the chain in order and report every row that breaks it.

    `anchor` is a (seq, hash) pair an auditor noted earlier outside the database (for
    instance from a syslog export): it catches a chain rewritten from that row onwards.
    """
    head = session.execute(
        select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == HEAD_ID)
    ).first()
    head_seq, head_hash = head if head is not None else (-1, "")
    report = VerifyReport(head_seq=head_seq, head_hash=head_hash)
    if head is None:
        report.problems.append(Problem(0, None, "the audit head row was deleted"))
    expected_seq = 1
    prev_hash = GENESIS_HASH
    anchor_seen = anchor is None
    rows = session.scalars(
        select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=1000)
    )
    for event in rows:
        report.checked += 1
        if event.seq != expected_seq:
            if event.seq > expected_seq:
                missing = (
                    f"seq {expected_seq}"
                    if event.seq == expected_seq + 1
                    else f"seq {expected_seq} to {event.seq - 1}"
                )
                reason = f"events before it are missing ({missing}): rows were deleted"
            else:
                reason = f"out of order: expected seq {expected_seq}"
            report.problems.append(Problem(event.seq, event.id, reason))
        if event_hash(event) != event.hash:
            report.problems.append(
                Problem(event.seq, event.id, "content changed: it no longer matches its hash")
            )
        if event.prev_hash != prev_hash:
            report.problems.append(
                Problem(
                    event.seq,
                    event.id,
                    "chain broken: its previous-hash is not the hash of the event before it "
                    "(a row before it was changed, deleted, inserted or reordered)",
                )
            )
        if anchor is not None and event.seq == anchor[0]:
            anchor_seen = True
            if event.hash != anchor[1]:
                report.problems.append(
                    Problem(event.seq, event.id, "hash differs from the anchor noted earlier")
                )
        expected_seq = event.seq + 1
        prev_hash = event.hash
        if len(report.problems) >= max_problems:
            return report
    last_seq = expected_seq - 1
    if head is not None and (head_seq != last_seq or head_hash != prev_hash):
        report.problems.append(
            Problem(
                head_seq,
                None,
                f"the last event recorded by the head is seq {head_seq}, the log ends at seq "
                f"{last_seq}: rows at the end were deleted or the head was changed",
            )
        )
    if not anchor_seen and anchor is not None:
        report.problems.append(Problem(anchor[0], None, "the anchored event no longer exists"))
    return report


# --- search and export --------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    event_id: str | None = None
    actor: str | None = None
    object_id: str | None = None
    outcome: int | None = None
    since: str | None = None  # ISO date or date-time, inclusive
    until: str | None = None  # ISO date or date-time, exclusive


def _filtered(query: Select[Any], flt: AuditFilter) -> Select[Any]:
    if flt.event_id:
        code = _event_code(flt.event_id)
        query = query.where(AuditEvent.event_id == code)
    if flt.actor:
        query = query.where(AuditEvent.actor == flt.actor)
    if flt.object_id:
        query = query.where(AuditEvent.object_id == flt.object_id)
    if flt.outcome is not None:
        query = query.where(AuditEvent.outcome == flt.outcome)
    if flt.since:
        query = query.where(AuditEvent.occurred_at >= flt.since)
    if flt.until:
        query = query.where(AuditEvent.occurred_at < flt.until)
    return query


def _event_code(name_or_code: str) -> str:
    """Accept a code (110112), a member name (QUERY) or the standard name (Query)."""
    if name_or_code in EVENT_NAMES:
        return name_or_code
    wanted = name_or_code.replace("_", " ").casefold()
    for code, name in EVENT_NAMES.items():
        if name.casefold() == wanted or EventId(code).name.replace("_", " ").casefold() == wanted:
            return code
    return name_or_code


AUDIT_COLUMNS = [
    "seq",
    "occurred_at",
    "event_id",
    "event",
    "event_type",
    "action",
    "outcome",
    "actor",
    "actor_role",
    "client_address",
    "object_type",
    "object_id",
    "detail",
    "hash",
]


def event_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "occurred_at": event.occurred_at,
        "event_id": event.event_id,
        "event": EVENT_NAMES.get(event.event_id, event.event_id),
        "event_type": EVENT_TYPE_NAMES.get(event.event_type, event.event_type)
        if event.event_type
        else None,
        "action": event.action,
        "outcome": event.outcome,
        "actor": event.actor,
        "actor_role": event.actor_role,
        "client_address": event.client_address,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "detail": event.detail,
        "hash": event.hash,
    }


def search(
    session: Session, flt: AuditFilter, *, limit: int = 100, offset: int = 0
) -> tuple[int, list[dict[str, Any]]]:
    total = session.scalar(_filtered(select(func.count()).select_from(AuditEvent), flt)) or 0
    rows = session.scalars(
        _filtered(select(AuditEvent), flt).order_by(AuditEvent.seq).limit(limit).offset(offset)
    ).all()
    return total, [event_row(e) for e in rows]


def iter_events(session: Session, flt: AuditFilter) -> Iterator[AuditEvent]:
    yield from session.scalars(
        _filtered(select(AuditEvent), flt)
        .order_by(AuditEvent.seq)
        .execution_options(yield_per=1000)
    )


# --- RFC 5424 syslog ----------------------------------------------------------------------

# Facility 13 is "log audit". The SD-ID carries the IANA documentation enterprise number;
# a deployment with its own Private Enterprise Number replaces it.
SYSLOG_FACILITY = 13
SD_ID = "amana@32473"
# The MSGID PS3.15 A.5.1 gives to DICOM audit messages carried over syslog.
DICOM_MSGID = "DICOM+RFC3881"

_OBJECT_ID_TYPES: dict[str, tuple[str, str, str]] = {
    # object_type -> (ParticipantObjectIDTypeCode code, scheme, meaning)
    "study": ("110180", "DCM", "Study Instance UID"),
    "sop_class": ("110181", "DCM", "SOP Class UID"),
    "node": ("110182", "DCM", "Node ID"),
}


def _severity(event: AuditEvent) -> int:
    if event.outcome >= Outcome.MAJOR_FAILURE:
        return 2
    if event.outcome >= Outcome.SERIOUS_FAILURE:
        return 3
    if event.outcome >= Outcome.MINOR_FAILURE:
        return 4
    return 5 if event.event_id == EventId.SECURITY_ALERT else 6


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _xml_attr(value: str) -> str:
    return (
        value.replace("&", "&amp;")
        .replace('"', "&quot;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
    )


def _code(tag: str, code: str, scheme: str, meaning: str) -> str:
    return (
        f'<{tag} csd-code="{_xml_attr(code)}" codeSystemName="{_xml_attr(scheme)}" '
        f'originalText="{_xml_attr(meaning)}"/>'
    )


def audit_message_xml(event: AuditEvent, source_id: str) -> str:
    """The event as a one-line DICOM AuditMessage (PS3.15 A.5.1 schema)."""
    parts = [
        "<AuditMessage>",
        f'<EventIdentification EventActionCode="{event.action}" '
        f'EventDateTime="{event.occurred_at}" EventOutcomeIndicator="{event.outcome}">',
        _code("EventID", event.event_id, "DCM", EVENT_NAMES.get(event.event_id, "")),
    ]
    if event.event_type:
        parts.append(
            _code(
                "EventTypeCode", event.event_type, "DCM", EVENT_TYPE_NAMES.get(event.event_type, "")
            )
        )
    parts.append("</EventIdentification>")
    access_point = (
        f' NetworkAccessPointID="{_xml_attr(event.client_address)}" NetworkAccessPointTypeCode="2"'
        if event.client_address
        else ""
    )
    parts.append(
        f'<ActiveParticipant UserID="{_xml_attr(event.actor)}" UserIsRequestor="true"'
        f"{access_point}>"
    )
    if event.actor_role:
        parts.append(_code("RoleIDCode", event.actor_role, "amana-role", event.actor_role))
    parts.append("</ActiveParticipant>")
    parts.append(f'<AuditSourceIdentification AuditSourceID="{_xml_attr(source_id)}"/>')
    if event.object_id:
        code, scheme, meaning = _OBJECT_ID_TYPES.get(
            event.object_type or "",
            (event.object_type or "object", "amana", event.object_type or "object"),
        )
        parts.append(
            f'<ParticipantObjectIdentification ParticipantObjectID="{_xml_attr(event.object_id)}"'
            ' ParticipantObjectTypeCode="2">'
        )
        parts.append(_code("ParticipantObjectIDTypeCode", code, scheme, meaning))
        parts.append("</ParticipantObjectIdentification>")
    parts.append("</AuditMessage>")
    return "".join(parts)


def to_syslog(event: AuditEvent, *, hostname: str = "-", app_name: str = "amana") -> str:
    """One RFC 5424 line: header, structured data with the chain fields, XML message."""
    pri = SYSLOG_FACILITY * 8 + _severity(event)
    params = {
        "seq": str(event.seq),
        "event": event.event_id,
        "action": event.action,
        "outcome": str(event.outcome),
        "actor": event.actor,
        "hash": event.hash,
        "prev": event.prev_hash,
    }
    sd = "[" + SD_ID + "".join(f' {k}="{_sd_escape(v)}"' for k, v in params.items()) + "]"
    host = (hostname or "-").replace(" ", "_")[:255]
    message = audit_message_xml(event, f"{app_name}@{host}")
    return f"<{pri}>1 {event.occurred_at} {host} {app_name} - {DICOM_MSGID} {sd} {message}"


# --- events the pipeline records ----------------------------------------------------------


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
