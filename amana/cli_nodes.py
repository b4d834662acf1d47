"""`amana nodes`: each ingest node's heartbeat, backlog, rates and errors (GET /nodes)."""

from __future__ import annotations

from typing import Any

from amana.cli_common import FormatOpt, print_listing

NODE_COLUMNS = [
    "name",
    "state",
    "last_heartbeat_at",
    "version",
    "received",
    "running",
    "held",
    "backlog",
    "done_last_5_min",
    "done_last_hour",
    "quarantined_last_hour",
    "retrying",
]


def node_rows(session: Any) -> list[dict[str, Any]]:
    from archive.work.nodes import node_status

    rows = []
    for status in node_status(session):
        row = status.as_dict()
        row["state"] = "up" if status.alive else "DOWN"
        row["last_heartbeat_at"] = (
            status.last_heartbeat_at.isoformat(timespec="seconds")
            if status.last_heartbeat_at is not None
            else "never"
        )
        rows.append(row)
    return rows


def nodes(fmt: FormatOpt = "table") -> None:
    """Ingest nodes: heartbeat (down after three missed), backlog (RECEIVED, RUNNING, HELD
    jobs), instances archived in the last 5 minutes and hour, quarantines in the last hour."""
    print_listing("nodes", "nodes", node_rows, fmt, NODE_COLUMNS)
