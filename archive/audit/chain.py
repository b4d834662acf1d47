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
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.errors import RetryableError
from archive.audit.anchor import note_head
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
    note_head(session, seq, event.hash)
    return event


def record(sessions: sessionmaker[Session], audit: AuditRecord) -> AuditEvent:
    """Append in a transaction of its own (for callers with nothing else to commit)."""
    with sessions.begin() as session:
        return append(session, audit)
