"""Sends job ids to the broker off the C-STORE path.

The catalog commit is what makes a job exist; a publish that fails only delays it until the
sweeper re-sends, so the receiver never waits on (or fails because of) the broker.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable

from celery import Celery

from amana.celery_app import PROCESS_JOB, QUEUE

log = logging.getLogger(__name__)

_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.5, "interval_max": 1}


def publish_now(app: Celery, job_id: int) -> None:
    app.send_task(PROCESS_JOB, args=[job_id], queue=QUEUE, retry=True, retry_policy=_RETRY_POLICY)


class Publisher:
    def __init__(self, app: Celery) -> None:
        self._app = app
        self._pending: queue.Queue[int | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="amana-publisher", daemon=True)
        self._thread.start()

    def submit(self, job_ids: Iterable[int]) -> None:
        for job_id in job_ids:
            self._pending.put(job_id)

    def close(self, timeout: float = 10.0) -> None:
        self._pending.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            job_id = self._pending.get()
            if job_id is None:
                return
            try:
                publish_now(self._app, job_id)
            except Exception as exc:  # the sweeper re-sends from the catalog
                log.warning(
                    "publish of job %s failed (%s); the sweeper will re-send it",
                    job_id,
                    type(exc).__name__,
                )
