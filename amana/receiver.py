"""The receiver process: the DICOM endpoint, the publisher and the sweeper."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from datetime import timedelta
from types import FrameType

from sqlalchemy.orm import Session, sessionmaker

from amana.celery_app import make_celery
from amana.listeners import SiblingListeners, bind_listener, die_with_parent, open_port
from amana.publisher import Publisher
from amana.settings import Settings
from amana.tls import prepare_tls, serve_tls
from archive import audit
from archive.catalog.db import make_engine, make_sessionmaker
from archive.governance.sources import SourceGate
from archive.work.publish import attach_job_sink
from ingest.scp import AssociationPolicy, StoreHandler, start_receiver
from ingest.spool import Spool
from ingest.sweeper import SweeperThread, sweep_once

log = logging.getLogger(__name__)


def run_receiver(settings: Settings, *, sweeper: bool = True, sibling: bool = False) -> None:
    """Serve the DICOM port; as a `sibling`, beside the receiver process that owns it."""
    owned: socket.socket | None = None
    if sibling:
        die_with_parent()
    else:
        # First, so that a busy port stops the receiver before anything else starts.
        owned = open_port(settings.dicom_host, settings.dicom_port, settings.receiver_processes)
    tls = prepare_tls(settings, sibling=sibling)
    spool = Spool(
        settings.spool_path,
        settings.spool_min_free_mb * 1024 * 1024,
        settings.max_instance_mb * 1024 * 1024,
    )
    sessions = make_sessionmaker(make_engine(settings.db_url))
    publisher = Publisher(make_celery(settings))
    # Before any session exists: a session takes its sink when it is made.
    attach_job_sink(sessions, publisher.submit)
    handler = StoreHandler(spool, sessions, validate=settings.validate_on_receive)
    policy = AssociationPolicy(
        SourceGate(sessions, open_when_empty=False), accept_loopback=settings.accept_loopback
    )
    # A sibling joins the port only now, when it can answer what the kernel sends it.
    listener = (
        owned
        if owned is not None
        else bind_listener(settings.dicom_host, settings.dicom_port, shared=True)
    )
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
    _audit_activity(sessions, started=True)
    siblings = None
    if owned is not None and settings.receiver_processes > 1:
        siblings = SiblingListeners(owned.getsockname()[1], settings.receiver_processes - 1)
    sweep_thread: SweeperThread | None = None
    if sweeper:
        sweep_thread = SweeperThread(
            settings.sweep_interval_s,
            lambda: sweep_once(
                sessions,
                publisher.submit,
                stale_after=timedelta(seconds=settings.stale_after_s),
                study_stable_after=timedelta(seconds=settings.study_stable_after_s),
            ),
        )
        sweep_thread.start()
    log.info(
        "receiver listening on %s:%d as %s",
        settings.dicom_host,
        settings.dicom_port,
        settings.ae_title,
    )

    stopping = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stopping.wait(1.0):
        if siblings is not None:
            siblings.restart_dead()
    log.info("receiver stopping")
    if siblings is not None:
        siblings.stop()
    server.shutdown()
    if tls_server is not None:
        tls_server.shutdown()
    if sweep_thread is not None:
        sweep_thread.stop()
    publisher.close()
    _audit_activity(sessions, started=False)


def _audit_activity(sessions: sessionmaker[Session], *, started: bool) -> None:
    try:
        audit.record(sessions, audit.application_activity("receiver", started=started))
    except Exception as exc:
        log.error(
            "could not audit receiver %s: %s", "start" if started else "stop", type(exc).__name__
        )
