"""Job rows of received instances, written behind the receiver's answers.

The spool is the record of what arrived (ingest/spool_names.py): an instance is answered
Success once its file is durable there, and its job row comes from this thread, many rows
per INSERT and commit, queued after the commit. The per-association audit event follows
its association's rows in the same order, so it names their job ids.

Nothing here is needed for durability: rows kept in memory while the catalog is down are
written when it is back, and rows this process never wrote (it was killed) are made by the
recovery scan (ingest/recovery.py) from the spool files. Both insert if absent, so a row is
made once whoever gets there first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from archive import audit
from archive.work.jobs import NewJob, create_jobs_if_absent, job_ids_of
from archive.work.publish import enqueue_after_commit

log = logging.getLogger(__name__)

# Rows per transaction at most; a batch is whatever waited while the last one committed.
BATCH_MAX = 500
# How long the first row of a batch waits for others to join it.
GATHER_S = 0.05
# Waits between attempts while the catalog is unreachable, doubling up to the last.
RETRY_S = (0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class AssociationDone:
    """The audit event of one association, written once its instances' rows are."""

    calling_ae: str | None
    address: str | None
    spool_names: tuple[str, ...]


Item = NewJob | AssociationDone


class JobBatcher(threading.Thread):
    def __init__(self, sessions: sessionmaker[Session], *, batch_max: int = BATCH_MAX) -> None:
        super().__init__(name="amana-job-batcher", daemon=True)
        self.sessions = sessions
        self.batch_max = batch_max
        self._items: deque[Item] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._busy = False
        self.failures = 0

    def submit(self, item: Item) -> None:
        with self._cond:
            self._items.append(item)
            # Only what the thread waits for: a first item, or a full batch (a wake-up per
            # instance costs the C-STORE thread a GIL hand-over each time).
            if len(self._items) == 1 or len(self._items) == self.batch_max:
                self._cond.notify()

    def pending_names(self) -> set[str]:
        """Spool names whose rows this batcher has not committed yet."""
        with self._cond:
            return {item.spool_name for item in self._items if isinstance(item, NewJob)}

    def idle(self) -> bool:
        with self._cond:
            return not self._items and not self._busy

    def stop(self, timeout_s: float) -> int:
        """Write what is waiting (for at most `timeout_s`), end the thread; the number of
        rows left unwritten (the recovery scan makes them at the next start)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self.join(timeout_s)
        with self._cond:
            return sum(isinstance(item, NewJob) for item in self._items)

    def run(self) -> None:
        retry = 0
        down_since: float | None = None
        while True:
            with self._cond:
                while not self._items and not self._stopping:
                    self._cond.wait()
                if not self._items:
                    return
                # A little longer, so that one association's instances share a commit too:
                # its sender waits for no row, only this thread's CPU per row counts.
                self._cond.wait_for(
                    lambda: len(self._items) >= self.batch_max or self._stopping, GATHER_S
                )
                count = min(self.batch_max, len(self._items))
                batch = [self._items.popleft() for _ in range(count)]
                self._busy = True
            try:
                self.write(batch)
                retry = 0
                if down_since is not None:
                    log.warning(
                        "job rows written again after %.0f s", time.monotonic() - down_since
                    )
                    down_since = None
            except Exception as exc:  # the catalog is down: keep them, in order, and retry
                self.failures += 1
                with self._cond:
                    self._items.extendleft(reversed(batch))
                    self._busy = False
                    if self._stopping:
                        return
                if down_since is None:  # once per outage, not at every retry
                    down_since = time.monotonic()
                    log.warning(
                        "received instances wait for their job rows (%s); retrying",
                        type(exc).__name__,
                    )
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping, RETRY_S[retry])
                retry = min(retry + 1, len(RETRY_S) - 1)
                continue
            with self._cond:
                self._busy = False

    def write(self, batch: list[Item]) -> None:
        """The rows and audit events of `batch` in one transaction, its new job ids
        queued after the commit."""
        with self.sessions.begin() as session:
            jobs = [item for item in batch if isinstance(item, NewJob)]
            enqueue_after_commit(session, create_jobs_if_absent(session, jobs))
            for item in batch:
                if isinstance(item, AssociationDone):
                    _audit_association(session, item)


def _audit_association(session: Session, done: AssociationDone) -> None:
    ids = job_ids_of(session, done.spool_names)
    audit.append(
        session,
        audit.instances_received(done.calling_ae, done.address, sorted(ids.values())),
    )
