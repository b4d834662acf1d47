"""Re-sends work the broker may have lost and closes studies that stopped receiving."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from archive.work.jobs import jobs_to_resend, mark_resent, received_before, utcnow
from archive.work.sampling import start_due_samples
from archive.work.studies import close_stable_studies

log = logging.getLogger(__name__)


def sweep_once(
    sessions: sessionmaker[Session],
    resend: Callable[[Sequence[int]], None],
    *,
    stale_after: timedelta,
    study_stable_after: timedelta,
    after_outage: bool = False,
    node: str | None = None,
) -> tuple[int, int]:
    """One pass; `after_outage` (the broker came back since the last pass, or this node just
    started) re-sends every RECEIVED job at once instead of waiting `stale_after` for each.

    Only `node`'s jobs are re-sent: no other node's workers can read their originals, and
    that node's own sweeper sends them when it runs again. Sampling and study completion are
    catalog-wide (a series or a study may arrive through several nodes): `resend` gets the
    released samples of any node and must route each to its node's queue."""
    resent = _resend_received(sessions, resend, node) if after_outage else 0
    with sessions.begin() as session:
        job_ids = list(jobs_to_resend(session, stale_after=stale_after, node=node))
        mark_resent(session, job_ids)
        # Sampled series that stopped growing, as studies do: their samples go out.
        job_ids += start_due_samples(session, stable_after=study_stable_after)
    if job_ids:
        resend(job_ids)
    # Study closing: archive/work/studies.py (complete only when nothing of it is
    # unfinished on any node; reopened studies recorded before anything closes).
    with sessions.begin() as session:
        closed = close_stable_studies(session, now=utcnow(), stable_after=study_stable_after)
    return resent + len(job_ids), closed


def _resend_received(
    sessions: sessionmaker[Session], resend: Callable[[Sequence[int]], None], node: str | None
) -> int:
    # Duplicates cost nothing (a worker's claim is conditional), a missing message costs
    # `stale_after`: send them all, a page at a time; a page once marked is past `cutoff`.
    cutoff = utcnow()
    total = 0
    while True:
        with sessions.begin() as session:
            job_ids = received_before(session, cutoff, node=node)
            mark_resent(session, job_ids)
        if not job_ids:
            return total
        resend(job_ids)
        total += len(job_ids)


class SweeperThread(threading.Thread):
    """Sweeps every `interval_s`; with `first_now`, once right at start as well."""

    def __init__(
        self, interval_s: float, sweep: Callable[[], tuple[int, int]], *, first_now: bool = False
    ) -> None:
        super().__init__(name="amana-sweeper", daemon=True)
        self._interval = interval_s
        self._sweep = sweep
        self._first_now = first_now
        self._stop_event = threading.Event()

    def _due(self) -> bool:
        if self._first_now:
            self._first_now = False
            return not self._stop_event.is_set()
        return not self._stop_event.wait(self._interval)

    def run(self) -> None:
        while self._due():
            try:
                resent, closed = self._sweep()
                if resent or closed:
                    log.info("sweeper: re-sent %d jobs, completed %d studies", resent, closed)
            except Exception as exc:  # a database outage must not end the sweeper
                log.warning("sweeper pass failed: %s", type(exc).__name__)

    def stop(self) -> None:
        self._stop_event.set()
