"""What the overview shows beside the catalog's counts, read from the audit trail: the
associations the receivers refused per calling AE title, and the last start or stop each
component (receiver, worker, api) recorded. Both are events the components append anyway
(archive.audit.records: association_refused, application_activity)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive.catalog.models_governance import AuditEvent

COMPONENTS = ("receiver", "worker", "api")


def refusals(session: Session, since: str) -> list[dict[str, Any]]:
    """Refused associations since `since` (an ISO date or moment, UTC) per calling AE
    title: how many, the last one, and how many per reason (unregistered, disabled, wrong
    address or certificate)."""
    from archive.audit.codes import EventId, EventType

    rows = session.execute(
        select(
            AuditEvent.object_id, AuditEvent.detail, func.count(), func.max(AuditEvent.occurred_at)
        )
        .where(
            AuditEvent.event_id == EventId.SECURITY_ALERT.value,
            AuditEvent.event_type == EventType.NODE_AUTHENTICATION.value,
            AuditEvent.occurred_at >= since,
        )
        .group_by(AuditEvent.object_id, AuditEvent.detail)
    ).all()
    merged: dict[str, dict[str, Any]] = {}
    for ae, detail, count, last in rows:
        label = ae or "-"
        entry = merged.setdefault(label, {"ae_title": label, "count": 0, "last": "", "reasons": {}})
        try:
            reason = str(json.loads(detail).get("reason", "-"))
        except (ValueError, AttributeError):
            reason = "-"
        entry["count"] += count
        entry["reasons"][reason] = entry["reasons"].get(reason, 0) + count
        entry["last"] = max(entry["last"], str(last))
    return sorted(merged.values(), key=lambda e: (-e["count"], e["ae_title"]))


def components(session: Session) -> list[dict[str, Any]]:
    """Per component, its last recorded start or stop (None when it never recorded one):
    whether the receivers were last seen starting or stopping, and when."""
    from archive.audit.codes import EventId, EventType

    out = []
    for component in COMPONENTS:
        row = session.execute(
            select(AuditEvent.event_type, AuditEvent.occurred_at)
            .where(
                AuditEvent.event_id == EventId.APPLICATION_ACTIVITY.value,
                AuditEvent.object_type == "application",
                AuditEvent.object_id == component,
            )
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        ).first()
        state = None
        if row is not None:
            state = "started" if row[0] == EventType.APPLICATION_START.value else "stopped"
        out.append({"component": component, "state": state, "at": row[1] if row else None})
    return out
