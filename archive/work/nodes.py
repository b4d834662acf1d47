"""Ingest nodes: their heartbeats, and what each one holds and does (`amana nodes`,
GET /nodes: both call `node_status`).

One row per node, written by its sweeper once per pass (every AMANA_SWEEP_INTERVAL_S): one
small UPSERT per node every half minute, whatever the traffic. Backlog, rates and errors are
read from the jobs themselves, so they are right even for a node that stopped reporting.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from archive.catalog.models import Job, JobStatus, Node
from archive.work.jobs import utcnow

# A node is shown as down once this many of its heartbeats are missing.
MISSED_HEARTBEATS = 3
BACKLOG = (JobStatus.RECEIVED, JobStatus.RUNNING, JobStatus.HELD)


def heartbeat(
    session: Session, name: str, *, started_at: datetime, every_s: float, version: str
) -> None:
    """Record that `name` is alive now (inserted on its first report)."""
    values = {
        "name": name,
        "started_at": started_at,
        "last_heartbeat_at": utcnow(),
        "heartbeat_every_s": every_s,
        "version": version[:64],
    }
    dialect = session.get_bind().dialect.name
    upsert: Any
    if dialect == "postgresql":
        upsert = postgresql.insert(Node).values(values)
    elif dialect == "sqlite":
        upsert = sqlite.insert(Node).values(values)
    else:  # pragma: no cover - the catalog runs on these two
        raise NotImplementedError(dialect)
    changed = {key: upsert.excluded[key] for key in values if key != "name"}
    session.execute(upsert.on_conflict_do_update(index_elements=["name"], set_=changed))


@dataclass(frozen=True)
class NodeStatus:
    name: str
    # None: a node that has jobs but never reported (its sweeper has not run yet).
    last_heartbeat_at: datetime | None
    started_at: datetime | None
    version: str | None
    alive: bool
    received: int
    running: int
    held: int
    # Instances archived (jobs DONE) in the last hour and the last five minutes.
    done_last_hour: int
    done_last_5_min: int
    # Jobs quarantined in the last hour, and jobs waiting again after a failed attempt.
    quarantined_last_hour: int
    retrying: int

    @property
    def backlog(self) -> int:
        return self.received + self.running + self.held

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "backlog": self.backlog}


def node_status(session: Session, *, now: datetime | None = None) -> list[NodeStatus]:
    """Every node that reported or holds jobs, by name; jobs made without a node (by tools
    and tests) are not shown."""
    now = now or utcnow()
    hour_ago, five_min_ago = now - timedelta(hours=1), now - timedelta(minutes=5)
    counts: dict[str, dict[str, int]] = {}

    def add(node: str | None, key: str, n: int) -> None:
        if node is not None:
            counts.setdefault(node, {})[key] = counts.get(node, {}).get(key, 0) + int(n)

    for node, status, n in session.execute(
        select(Job.node, Job.status, func.count())
        .where(Job.status.in_(BACKLOG))
        .group_by(Job.node, Job.status)
    ).all():
        add(node, str(JobStatus(status).value).lower(), n)
    for node, n in session.execute(
        select(Job.node, func.count())
        .where(Job.status == JobStatus.RECEIVED)
        .where(Job.attempts > 0)
        .group_by(Job.node)
    ).all():
        add(node, "retrying", n)
    recent = {
        "done_last_hour": (JobStatus.DONE, hour_ago),
        "done_last_5_min": (JobStatus.DONE, five_min_ago),
        "quarantined_last_hour": (JobStatus.QUARANTINED, hour_ago),
    }
    for key, (status, since) in recent.items():
        for node, n in session.execute(
            select(Job.node, func.count())
            .where(Job.status == status)
            .where(Job.finished_at >= since)
            .group_by(Job.node)
        ).all():
            add(node, key, n)
    reported = {row.name: row for row in session.scalars(select(Node))}
    result = []
    for name in sorted(set(counts) | set(reported)):
        row = reported.get(name)
        seen = counts.get(name, {})
        last = _aware(row.last_heartbeat_at) if row is not None else None
        alive = (
            row is not None
            and last is not None
            and now - last <= timedelta(seconds=row.heartbeat_every_s * MISSED_HEARTBEATS)
        )
        result.append(
            NodeStatus(
                name=name,
                last_heartbeat_at=last,
                started_at=_aware(row.started_at) if row is not None else None,
                version=row.version if row is not None else None,
                alive=alive,
                received=seen.get("received", 0),
                running=seen.get("running", 0),
                held=seen.get("held", 0),
                done_last_hour=seen.get("done_last_hour", 0),
                done_last_5_min=seen.get("done_last_5_min", 0),
                quarantined_last_hour=seen.get("quarantined_last_hour", 0),
                retrying=seen.get("retrying", 0),
            )
        )
    return result


def _aware(moment: datetime) -> datetime:
    # SQLite gives back naive datetimes for what was written in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
