"""The receiver process: the DICOM endpoint, the publisher and the sweeper."""

from __future__ import annotations

import logging
import socket
import socketserver
import time
from collections.abc import Callable
from datetime import timedelta
from importlib import metadata
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from amana.broker import after_outages
from amana.celery_app import make_celery, node_queue
from amana.listeners import SiblingListeners, bind_listener, on_parent_gone, open_port
from amana.publisher import Publisher, close_marking_unsent
from amana.routing import routed_sink
from amana.sessions import anchored
from amana.settings import Settings
from amana.stopping import Stopping
from amana.tls import prepare_tls, serve_tls
from archive import audit
from archive.catalog.db import make_engine, make_sessionmaker
from archive.governance.sources import SourceGate
from archive.work.jobs import utcnow
from archive.work.nodes import heartbeat
from archive.work.publish import attach_job_sink
from ingest.recovery import recover_spool
from ingest.scp import AssociationPolicy, StoreHandler, start_receiver
from ingest.spool import Spool
from ingest.sweeper import SweeperThread, sweep_once

log = logging.getLogger(__name__)

# Associations under way when a stop starts may finish for this long (their instances are
# answered Success only once durable), then they are aborted: the PACS resends the rest.
DRAIN_S = 5.0
# Whatever hangs, the process is gone this long after a stop started: a sibling soon after
# the drain, the owner once it also waited (up to 20 s) for its siblings.
SIBLING_STOP_DEADLINE_S = DRAIN_S + 10.0
OWNER_STOP_DEADLINE_S = DRAIN_S + 35.0


def run_receiver(settings: Settings, *, sweeper: bool = True, sibling: bool = False) -> None:
    """Serve the DICOM port; as a `sibling`, beside the receiver process that owns it."""
    owned: socket.socket | None = None
    stopping = Stopping()
    if sibling:
        on_parent_gone(lambda: _parent_gone(stopping))
    else:
        # First, so that a busy port stops the receiver before anything else starts.
        owned = open_port(settings.dicom_host, settings.dicom_port, settings.receiver_processes)
        stopping.guard(owned)
    tls = prepare_tls(settings, sibling=sibling)
    if tls is not None and tls.owned is not None:
        stopping.guard(tls.owned)
    spool = Spool(
        settings.spool_path,
        settings.spool_min_free_mb * 1024 * 1024,
        settings.max_instance_mb * 1024 * 1024,
    )
    sessions = anchored(make_sessionmaker(make_engine(settings.db_url)), settings)
    publisher = Publisher(make_celery(settings), queue=node_queue(settings.node))
    # Before any session exists: a session takes its sink when it is made. Every job this
    # process makes is its own node's: no look-up on the C-STORE path.
    attach_job_sink(sessions, publisher.submit)
    if owned is not None:
        # Before any receiver process of this spool accepts an association.
        purge_unacknowledged(spool, sessions)
        recover_rows(spool, sessions, settings.node, settle_s=0.0)
    handler = StoreHandler(
        spool, sessions, validate=settings.validate_on_receive, node=settings.node
    )
    policy = AssociationPolicy(
        SourceGate(sessions, open_when_empty=False),
        accept_loopback=settings.accept_loopback,
        spool=spool,
    )
    # A sibling joins the port only now, when it can answer what the kernel sends it.
    if stopping.reason is not None:  # the parent went while this sibling was starting
        return
    listener = (
        owned
        if owned is not None
        else bind_listener(settings.dicom_host, settings.dicom_port, shared=True)
    )
    stopping.guard(listener)
    server = start_receiver(
        host=settings.dicom_host,
        port=settings.dicom_port,
        ae_title=settings.ae_title,
        spool=spool,
        handler=handler,
        policy=policy,
        listen_fd=listener.fileno(),
    )
    tls_server = serve_tls(settings, tls, spool, handler, policy) if tls is not None else None
    if tls_server is not None and tls_server.socket is not None:
        # A sibling's own TLS listener: shut down at a stop request like the plain one.
        stopping.guard(tls_server.socket)
    _audit_activity(sessions, started=True)
    siblings = None
    if owned is not None and settings.receiver_processes > 1:
        siblings = SiblingListeners(owned.getsockname()[1], settings.receiver_processes - 1)
    sweep_thread: SweeperThread | None = None
    if sweeper:
        sweep_thread = SweeperThread(
            settings.sweep_interval_s,
            after_outages(
                publisher.broker,
                node_sweep(settings, sessions, publisher, spool=spool, handler=handler),
            ),
            first_now=True,
        )
        sweep_thread.start()
    log.info(
        "receiver listening on %s:%d as %s",
        settings.dicom_host,
        settings.dicom_port,
        settings.ae_title,
    )

    while not stopping.wait(1.0):
        if siblings is not None:
            siblings.restart_dead()
    reason = stopping.begin(SIBLING_STOP_DEADLINE_S if sibling else OWNER_STOP_DEADLINE_S)
    log.info("receiver stopping (%s)", reason)
    # The accept loop first: it would spin on the listening socket, now shut down.
    socketserver.BaseServer.shutdown(server)
    if tls_server is not None:
        socketserver.BaseServer.shutdown(tls_server)
    if siblings is not None:
        siblings.stop()
    finish_associations(server, DRAIN_S)
    server.shutdown()
    if tls_server is not None:
        finish_associations(tls_server, DRAIN_S)
        tls_server.shutdown()
    if sweep_thread is not None:
        sweep_thread.stop()
    left = handler.stop_jobs(DRAIN_S)
    if left:
        log.warning("%d received instance(s) left without job rows until the next start", left)
    close_marking_unsent(publisher, sessions)
    _audit_activity(sessions, started=False)


def node_sweep(
    settings: Settings,
    sessions: sessionmaker[Session],
    publisher: Publisher,
    *,
    spool: Spool | None = None,
    handler: StoreHandler | None = None,
) -> Callable[[bool], tuple[int, int]]:
    """The node's sweeper pass: its heartbeat, the job rows of spool files that have none
    (with `spool`), then the sweep. The first pass after the node starts re-sends all of its
    RECEIVED jobs, as after a broker outage: a node that died keeps its jobs in the catalog
    and its originals in its spool, and they resume now."""
    started_at = utcnow()
    version = _version()
    resend = routed_sink(
        sessions, settings.node, lambda ids, queue: publisher.submit(ids, queue=queue)
    )
    starting = True
    # Spool files already seen with a row: not looked up again while they wait for a worker.
    known: set[str] = set()

    def sweep(after_outage: bool) -> tuple[int, int]:
        nonlocal starting
        with sessions.begin() as session:
            heartbeat(
                session,
                settings.node,
                started_at=started_at,
                every_s=settings.sweep_interval_s,
                version=version,
            )
        if spool is not None:
            recover_spool(
                spool,
                sessions,
                node=settings.node,
                skip=handler.jobs.pending_names if handler is not None else set,
                known=known,
            )
        result = sweep_once(
            sessions,
            resend,
            stale_after=timedelta(seconds=settings.stale_after_s),
            study_stable_after=timedelta(seconds=settings.study_stable_after_s),
            after_outage=after_outage or starting,
            node=settings.node,
        )
        starting = False
        return result

    return sweep


def _version() -> str:
    try:
        return metadata.version("amana")
    except metadata.PackageNotFoundError:
        return "unknown"


def _audit_activity(sessions: sessionmaker[Session], *, started: bool) -> None:
    try:
        audit.record(sessions, audit.application_activity("receiver", started=started))
    except Exception as exc:
        log.error(
            "could not audit receiver %s: %s", "start" if started else "stop", type(exc).__name__
        )


def _parent_gone(stopping: Stopping) -> None:
    # Called from the lifeline thread: stops accepting before anything else, and bounds
    # the sibling's life even if its main thread never gets to the stop.
    stopping.request("receiver that owns the port is gone", SIBLING_STOP_DEADLINE_S)


def finish_associations(server: Any, drain_s: float) -> None:
    """Let the associations under way end by themselves for `drain_s`, then abort them."""
    deadline = time.monotonic() + drain_s
    while server.active_associations and time.monotonic() < deadline:
        time.sleep(0.1)
    for assoc in server.active_associations:
        assoc.abort()


def recover_rows(
    spool: Spool, sessions: sessionmaker[Session], node: str, *, settle_s: float
) -> None:
    """Job rows for the spool files an earlier receiver answered Success for but never
    wrote a row for (killed, or the catalog was down until it stopped)."""
    try:
        recover_spool(spool, sessions, node=node, settle_s=settle_s)
    except Exception as exc:  # the catalog is down: the sweeper makes them later
        log.warning("spool recovery scan deferred: %s", type(exc).__name__)


def purge_unacknowledged(spool: Spool, sessions: sessionmaker[Session]) -> None:
    """Remove what an earlier receiver left in the spool's tmp/ (never answered Success)."""
    removed = spool.purge_unacknowledged()
    if not removed:
        return
    log.warning("removed %d unacknowledged partial instances from the spool", removed)
    try:
        audit.record(sessions, audit.unacknowledged_instances_removed(removed))
    except Exception as exc:
        log.error("could not audit the spool clean-up: %s", type(exc).__name__)
