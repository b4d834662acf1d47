"""The hash chain: how an event is hashed, appended and checked.

Each event stores the hash of the one before it, so changing, deleting, inserting or
reordering a row breaks the chain at that row, and `verify` names it. Appends take the
single `audit_head` row first (a row lock on PostgreSQL, the write lock on SQLite), so any
number of processes append to one chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.errors import RetryableError
from archive.audit.records import AuditRecord
from archive.catalog.models_governance import AuditEvent, AuditHead

GENESIS_HASH = "0" * 64
HEAD_ID = 1


class AuditUnavailable(RetryableError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="audit_unavailable")


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
