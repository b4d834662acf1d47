"""Sends job ids to the broker off the C-STORE path.

The catalog commit is what makes a job exist; a publish that fails only delays it, so the
receiver never waits on (or fails because of) the broker.

Ids are sent in small batches, one message each: a worker then claims and catalogs a batch
in a few round trips, and the broker sees one message per batch instead of per instance.

A broker outage: the first failed publish marks the broker down; from then on ids are held
here (not tried one by one, each try costing a connect timeout) and the broker is probed
every PROBE_EVERY_S; once it answers, the held ids are sent first. Every publish uses the
publisher's own connection, dropped after a failure so the next one starts afresh: the
app's shared pool is never closed, since kombu cannot reopen a closed pool.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import suppress
from queue import Empty, Queue
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from amana.broker import BrokerState, BrokerWatch, probe
from amana.celery_app import PROCESS_JOBS
from archive.work.jobs import mark_never_sent

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
# How often the broker is probed while it is down, and while nothing is sent (so an outage
# shows in the log and is recovered from even when no instance arrives).
PROBE_EVERY_S = 2.0
# Ids held during an outage, at most: beyond that they stay only in the catalog, and the
# sweeper's pass after the broker returns sends them (about 8 MB of ints).
HELD_MAX = 200_000


def publish_now(app: Celery, job_ids: Sequence[int], *, queue: str, connection: Any = None) -> None:
    app.send_task(
        PROCESS_JOBS,
        args=[list(job_ids)],
        queue=queue,
        retry=True,
        retry_policy=_RETRY_POLICY,
        connection=connection,
    )


# One id waiting to be sent, with the queue (its node's) it goes to.
_Item = tuple[str, int]


class Publisher:
    """Sends to `queue` (this node's) unless `submit` names another node's queue."""

    def __init__(
        self,
        app: Celery,
        *,
        queue: str,
        batch_max: int = BATCH_MAX,
        linger_s: float = LINGER_S,
        probe_every_s: float = PROBE_EVERY_S,
        watch: BrokerWatch | None = None,
    ):
        self._app = app
        self._queue = queue
        self._batch_max = batch_max
        self._linger_s = linger_s
        self._probe_every_s = probe_every_s
        self.broker = watch if watch is not None else BrokerWatch()
        self._pending: Queue[_Item | None] = Queue()
        self._held: list[_Item] = []
        # Ids given up on here (held past HELD_MAX); the catalog still has their jobs.
        self._dropped = 0
        self._conn: Any = None
        # The batch being sent right now: unsent until the broker took it.
        self._in_flight: list[_Item] = []
        self._in_flight_lock = threading.Lock()
        self._last_contact = float("-inf")
        self._thread = threading.Thread(target=self._run, name="amana-publisher", daemon=True)
        self._thread.start()

    @property
    def unsent(self) -> int:
        """Jobs not (yet) published by this process; the sweeper sends them later."""
        return len(self._held) + self._dropped

    def submit(self, job_ids: Iterable[int], *, queue: str | None = None) -> None:
        target = self._queue if queue is None else queue
        for job_id in job_ids:
            self._pending.put((target, job_id))

    def close(self, timeout: float = 10.0) -> list[int]:
        """Sends what it can within `timeout`; returns the ids the broker may not have (held,
        still waiting, or in a send that did not finish), so that the caller can mark their
        jobs as never sent and the sweeper sends them at its next pass instead of after
        `stale_after`. A process that exits with unsent ids loses nothing but that delay."""
        self._pending.put(None)
        self._thread.join(timeout)
        with self._in_flight_lock:
            unsent = [job_id for _queue, job_id in [*self._held, *self._in_flight]]
        while True:
            try:
                item = self._pending.get_nowait()
            except Empty:
                break
            if item is not None:
                unsent.append(item[1])
        return sorted(set(unsent))

    def _next_batch(self) -> tuple[list[_Item], bool]:
        """Waits up to the probe period for the first id, then gathers more until the batch
        is full or the linger time is over; the flag says whether close() was asked for."""
        try:
            first = self._pending.get(timeout=self._probe_every_s)
        except Empty:
            return [], False
        if first is None:
            return [], True
        batch = [first]
        deadline = time.monotonic() + self._linger_s
        while len(batch) < self._batch_max:
            try:
                item = self._pending.get(timeout=max(0.0, deadline - time.monotonic()))
            except Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        closing = False
        while not closing:
            batch, closing = self._next_batch()
            self._step(batch, force_probe=closing)

    def _step(self, batch: list[_Item], *, force_probe: bool) -> None:
        due = force_probe or time.monotonic() - self._last_contact >= self._probe_every_s
        if self.broker.state is not BrokerState.UP or not batch:
            if not due:
                self._hold(batch)
                return
            self._check_broker()
            if self.broker.state is not BrokerState.UP:
                self._hold(batch)
                return
        with self._in_flight_lock:
            held, self._held = self._held, []
            self._in_flight = held + batch
        self._send(self._in_flight)
        with self._in_flight_lock:
            self._in_flight = []

    def _check_broker(self) -> None:
        self._last_contact = time.monotonic()
        reason = probe(self._app)
        if reason is None:
            self.broker.saw_up()
        else:
            self.broker.saw_down(reason)

    def _send(self, items: list[_Item]) -> None:
        by_queue: dict[str, list[int]] = {}
        for target, job_id in items:
            by_queue.setdefault(target, []).append(job_id)
        chunks = [
            (target, ids[start : start + self._batch_max])
            for target, ids in by_queue.items()
            for start in range(0, len(ids), self._batch_max)
        ]
        for index, (target, chunk) in enumerate(chunks):
            try:
                if self._conn is None:
                    self._conn = self._app.connection_for_write()
                publish_now(self._app, chunk, queue=target, connection=self._conn)
            except Exception as exc:
                self._drop_connection()
                self.broker.saw_down(type(exc).__name__)
                with self._in_flight_lock:
                    self._hold([(q, job_id) for q, ids in chunks[index:] for job_id in ids])
                    self._in_flight = []
                return
            self._last_contact = time.monotonic()
            self.broker.saw_up()

    def _hold(self, job_ids: list[_Item]) -> None:
        room = max(0, HELD_MAX - len(self._held))
        self._held.extend(job_ids[:room])
        self._dropped += len(job_ids) - min(room, len(job_ids))

    def _drop_connection(self) -> None:
        # A connection (or, on the SQL transport, a session) left in a failed state would
        # fail every later publish too; the next publish opens a new one.
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                conn.collect()


def close_marking_unsent(
    publisher: Publisher, sessions: sessionmaker[Session], timeout: float = 10.0
) -> int:
    """Closes the publisher; the jobs it could not send are marked never sent in the catalog
    (best effort: when the catalog is down too, `stale_after` still covers them). Returns
    how many."""
    unsent = publisher.close(timeout)
    if unsent:
        try:
            with sessions.begin() as session:
                mark_never_sent(session, unsent)
        except Exception as exc:
            log.warning("could not mark %d unsent jobs: %s", len(unsent), type(exc).__name__)
    return len(unsent)
