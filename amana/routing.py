"""Job ids to their node's queue, when the sender does not know whose they are.

The receiver and folder import only make jobs of their own node and publish them to its
queue directly. A worker's commit can release jobs of any node (the held slices of a series
split across nodes, archive/work/sampling.py), and so can the sweeper's sampling pass: those
ids are looked up, one query per commit that released any, and each goes to its node's queue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session, sessionmaker

from amana.celery_app import node_queue
from archive.work.jobs import nodes_of
from archive.work.publish import JobSink

# Sends ids to one queue.
Send = Callable[[Sequence[int], str], None]


def routed_sink(sessions: sessionmaker[Session], own_node: str, send: Send) -> JobSink:
    def sink(job_ids: Sequence[int]) -> None:
        if not job_ids:
            return
        with sessions() as session:
            by_node = nodes_of(session, job_ids)
        for node, ids in by_node.items():
            # A job made without a node (by a tool) can only be run where it was made.
            send(ids, node_queue(node if node is not None else own_node))

    return sink
