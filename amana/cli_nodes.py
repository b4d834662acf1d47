"""`amana nodes`: each ingest node's heartbeat, backlog, rates and errors (GET /nodes)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from amana.cli_common import FormatOpt, print_listing

# The table's and the CSV's columns; JSON has every field of GET /nodes besides.
NODE_COLUMNS = [
    "name",
    "state",
    "heartbeat",
    "version",
    "backlog",
    "received",
    "running",
    "held",
    "done_5m",
    "done_1h",
    "quarantined_1h",
    "retrying",
]


def node_rows(session: Any) -> list[dict[str, Any]]:
    from archive.work.nodes import node_status

    now = datetime.now(UTC)
    rows = []
    for status in node_status(session, now=now):
        row = status.as_dict()
        last = status.last_heartbeat_at
        row.update(
            state="up" if status.alive else "DOWN",
            heartbeat="never" if last is None else f"{(now - last).total_seconds():.0f} s ago",
            done_5m=status.done_last_5_min,
            done_1h=status.done_last_hour,
            quarantined_1h=status.quarantined_last_hour,
        )
        rows.append(row)
    return rows


def nodes(fmt: FormatOpt = "table") -> None:
    """Ingest nodes: heartbeat (DOWN after three missed), backlog (RECEIVED, RUNNING, HELD
    jobs), instances archived in the last 5 minutes and hour, quarantines in the last hour,
    jobs waiting again after a failed attempt."""
    print_listing("nodes", "nodes", node_rows, fmt, NODE_COLUMNS)
