"""Reading the trail: filters, keyset pages by sequence number, and a stream of every match.

Pages are cut by `seq` (unique, indexed, and the chain's own order) rather than by OFFSET:
the cost of a page does not grow with how far an auditor has paged, and no page counts the
whole log. A count is a separate call for the callers that want one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from archive.audit.codes import EVENT_NAMES, EVENT_TYPE_NAMES, event_code
from archive.catalog.models_governance import AuditEvent

# Rows per keyset page when streaming: large enough that the round trips do not dominate,
# small enough that a million-row export never holds more than this many events at once.
STREAM_PAGE = 1000


@dataclass(frozen=True)
class AuditFilter:
    event_id: str | None = None
    actor: str | None = None
    object_id: str | None = None
    outcome: int | None = None
    since: str | None = None  # ISO date or date-time, inclusive
    until: str | None = None  # ISO date or date-time, exclusive
    # The last sequence number included: an export pinned to the head it started from is a
    # snapshot, and does not pick up events appended while it runs (its own record among them).
    to_seq: int | None = None


@dataclass(frozen=True)
class AuditPage:
    """One page, newest first. `next_before_seq` is what to pass as `before_seq` for the
    next (older) page; None when this page reached the oldest matching event."""

    items: list[dict[str, Any]]
    next_before_seq: int | None


# The columns of a search result row, in the order of CSV exports.
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
    """A stored event as a search result: codes with their names, the chain's hash."""
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


def filtered(query: Select[Any], flt: AuditFilter) -> Select[Any]:
    """`query` narrowed to the events that match `flt`."""
    if flt.event_id:
        query = query.where(AuditEvent.event_id == event_code(flt.event_id))
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
    if flt.to_seq is not None:
        query = query.where(AuditEvent.seq <= flt.to_seq)
    return query


def latest_seq(session: Session) -> int:
    """The sequence number of the newest event, 0 for an empty trail."""
    return session.scalar(select(func.max(AuditEvent.seq))) or 0


def search_page(
    session: Session, flt: AuditFilter, *, before_seq: int | None = None, limit: int = 100
) -> AuditPage:
    """Up to `limit` matching events older than `before_seq` (all when None), newest first.

    One query, no COUNT: one row more than asked tells whether an older page exists.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    query = filtered(select(AuditEvent), flt)
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    events = list(session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit + 1)))
    more = len(events) > limit
    events = events[:limit]
    return AuditPage(
        items=[event_row(e) for e in events],
        next_before_seq=events[-1].seq if more else None,
    )


def count(session: Session, flt: AuditFilter) -> int:
    """How many events match (a full scan of the matches: call it once, not per page)."""
    return session.scalar(filtered(select(func.count()).select_from(AuditEvent), flt)) or 0


def search(
    session: Session, flt: AuditFilter, *, limit: int = 100, offset: int = 0
) -> tuple[int, list[dict[str, Any]]]:
    """Count and one OFFSET page in chain order.

    Kept for the HTTP `/audit` route and a study's audit history until they move to
    `search_page`; new callers use `search_page` (and `count` if they need a total).
    """
    total = count(session, flt)
    rows = session.scalars(
        filtered(select(AuditEvent), flt).order_by(AuditEvent.seq).limit(limit).offset(offset)
    ).all()
    return total, [event_row(e) for e in rows]


def iter_event_pages(
    session: Session, flt: AuditFilter, *, page_size: int = STREAM_PAGE
) -> Iterator[list[AuditEvent]]:
    """Every matching event in chain order, one keyset page (`seq > last`) at a time.

    Each page is its own short query, so no cursor stays open between pages and nothing
    more than a page is held: the session's identity map keeps loaded events only while the
    caller references them.
    """
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    last_seq: int | None = None
    while True:
        query = filtered(select(AuditEvent), flt)
        if last_seq is not None:
            query = query.where(AuditEvent.seq > last_seq)
        page = list(session.scalars(query.order_by(AuditEvent.seq).limit(page_size)))
        if not page:
            return
        yield page
        if len(page) < page_size:
            return
        last_seq = page[-1].seq


def iter_events(
    session: Session, flt: AuditFilter, *, page_size: int = STREAM_PAGE
) -> Iterator[AuditEvent]:
    """Every matching event in chain order, read in keyset pages."""
    for page in iter_event_pages(session, flt, page_size=page_size):
        yield from page
