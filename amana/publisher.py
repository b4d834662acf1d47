"""Sends job ids to the broker off the C-STORE path.

The catalog commit is what makes a job exist; a publish that fails only delays it until the
sweeper re-sends, so the receiver never waits on (or fails because of) the broker.

Ids are sent in small batches, one message each: a worker then claims and catalogs a batch
in a few round trips, and the broker sees one message per batch instead of per instance.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable, Sequence

from celery import Celery

from amana.celery_app import PROCESS_JOBS, QUEUE

log = logging.getLogger(__name__)

_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.5, "interval_max": 1}
# Enough to amortise a worker's round trips, small enough that two workers both get work
# from one association.
BATCH_MAX = 16
# How long the first id of a batch may wait for company: the archive is not interactive.
# A batch costs a worker about 4-5 ms of CPU whatever its size (claim, catalog commit,
# audit event, the message itself): at 0.1 s one association's batches held 2-6 ids and
# that overhead doubled a worker's CPU per instance; at 0.5 s they fill to BATCH_MAX from
# about 32 instances/s.
LINGER_S = 0.5


def publish_now(app: Celery, job_ids: Sequence[int]) -> None:
    app.send_task(
        PROCESS_JOBS,
        args=[list(job_ids)],
        queue=QUEUE,
        retry=True,
        retry_policy=_RETRY_POLICY,
    )


class Publisher:
    def __init__(self, app: Celery, *, batch_max: int = BATCH_MAX, linger_s: float = LINGER_S):
        self._app = app
        self._batch_max = batch_max
        self._linger_s = linger_s
        self._pending: queue.Queue[int | None] = queue.Queue()
        # Jobs whose publish failed; the sweeper sends them later.
        self.unsent = 0
        self._thread = threading.Thread(target=self._run, name="amana-publisher", daemon=True)
        self._thread.start()

    def submit(self, job_ids: Iterable[int]) -> None:
        for job_id in job_ids:
            self._pending.put(job_id)

    def close(self, timeout: float = 10.0) -> None:
        self._pending.put(None)
        self._thread.join(timeout)

    def _next_batch(self) -> tuple[list[int], bool]:
        """Blocks for the first id, then gathers more until the batch is full or the linger
        time is over; the flag says whether close() was asked for."""
        first = self._pending.get()
        if first is None:
            return [], True
        batch = [first]
        deadline = time.monotonic() + self._linger_s
        while len(batch) < self._batch_max:
            try:
                item = self._pending.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        closing = False
        while not closing:
            batch, closing = self._next_batch()
            if not batch:
                continue
            try:
                publish_now(self._app, batch)
            except Exception as exc:  # the sweeper re-sends from the catalog
                self.unsent += len(batch)
                # Start the next publish on a fresh connection: a channel left in a failed
                # state would otherwise fail every later publish too.
                self._app.pool.force_close_all()
                log.warning(
                    "publish of %d job(s) failed (%s); the sweeper will re-send them",
                    len(batch),
                    type(exc).__name__,
                )
