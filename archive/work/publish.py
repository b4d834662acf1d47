"""Jobs reach the queue only after the transaction that created them commits.

Every caller (the receiver, folder import, quarantine retry over HTTP and on the command
line) says `enqueue_after_commit(session, job_ids)` inside its transaction; the ids are
handed to the sink that the process attached to its sessionmaker (the shell's publisher),
once, right after the commit. A rollback drops them. A sink that fails, or no sink at all,
costs time only: the job rows are committed and the sweeper re-sends stale jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

JobSink = Callable[[Sequence[int]], None]

_PENDING = "amana.pending_job_ids"
_SINK = "amana.job_sink"


def attach_job_sink(sessions: sessionmaker[Session], sink: JobSink) -> None:
    """Make every session of `sessions` hand its committed job ids to `sink`."""
    sessions.kw.setdefault("info", {})[_SINK] = sink
    if not event.contains(sessions, "after_commit", _after_commit):
        event.listen(sessions, "after_commit", _after_commit)
        event.listen(sessions, "after_rollback", _after_rollback)


def enqueue_after_commit(session: Session, job_ids: Iterable[int]) -> None:
    session.info.setdefault(_PENDING, []).extend(job_ids)


def _after_commit(session: Session) -> None:
    job_ids: list[int] = session.info.pop(_PENDING, [])
    sink: JobSink | None = session.info.get(_SINK)
    if not job_ids or sink is None:
        return
    try:
        sink(job_ids)
    except Exception as exc:  # committed is committed: the sweeper re-sends
        log.warning(
            "%d job(s) not sent now (%s); the sweeper will send them",
            len(job_ids),
            type(exc).__name__,
        )


def _after_rollback(session: Session, *_args: Any) -> None:
    session.info.pop(_PENDING, None)
