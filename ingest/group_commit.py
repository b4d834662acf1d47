"""Job rows of received instances committed together: one transaction (one WAL or
PostgreSQL commit flush) and one spool directory flush for every instance that is waiting
at the same time, whichever association it came on.

Each C-STORE handler thread asks for its job row and waits. The first to ask while no
commit is running leads: it takes every request waiting then, flushes the spool directory
(the renames into it become durable), inserts their rows in one statement and commits, then
wakes the others. Requests that arrive during that commit form the next group. Nobody is
answered before the commit holding its row has returned, so Success still means the
instance and its job are durable; with one association a group is one instance and this
costs what a transaction per instance cost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from archive.work.jobs import NewJob, create_jobs
from archive.work.publish import enqueue_after_commit

# Enough for every association a receiver process serves at once.
GROUP_MAX = 64


@dataclass(eq=False)
class _Request:
    job: NewJob
    job_id: int | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class JobGroupCommit:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        before_commit: Callable[[], None] | None = None,
        group_max: int = GROUP_MAX,
    ) -> None:
        self.sessions = sessions
        # Runs once per group before its rows are written (the spool directory flush).
        self.before_commit = before_commit
        self.group_max = group_max
        self._cond = threading.Condition()
        self._waiting: list[_Request] = []
        self._leading = False

    def commit(self, job: NewJob) -> int:
        """The committed job id of `job`; raises what its group's transaction raised."""
        request = _Request(job)
        with self._cond:
            self._waiting.append(request)
        while True:
            with self._cond:
                while self._leading and not request.done:
                    self._cond.wait()
                if request.done:
                    break
                self._leading = True
                group = self._waiting[: self.group_max]
                del self._waiting[: self.group_max]
            try:
                self._run(group)
            finally:
                with self._cond:
                    for pending in group:
                        if not pending.done:  # an interruption: fail it, never leave it
                            pending.error = pending.error or RuntimeError("commit interrupted")
                            pending.done = True
                    self._leading = False
                    self._cond.notify_all()
        if request.error is not None:
            raise request.error
        assert request.job_id is not None
        return request.job_id

    def _run(self, group: list[_Request]) -> None:
        try:
            if self.before_commit is not None:
                self.before_commit()
            with self.sessions.begin() as session:
                job_ids = create_jobs(session, [request.job for request in group])
                enqueue_after_commit(session, job_ids)
        except Exception as exc:  # every request of the group fails with it
            for request in group:
                request.error, request.done = exc, True
            return
        for request, job_id in zip(group, job_ids, strict=True):
            request.job_id, request.done = job_id, True
