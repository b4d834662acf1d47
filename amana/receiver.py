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
from amana.listeners import SiblingListeners, die_with_parent, open_listeners
from amana.publisher import Publisher
from amana.settings import Settings
from archive import audit
from archive.db import make_engine, make_sessionmaker
from archive.sources import SourceGate
from ingest.scp import AssociationPolicy, StoreHandler, start_receiver
from ingest.spool import Spool
from ingest.sweeper import SweeperThread, sweep_once

log = logging.getLogger(__name__)


def run_receiver(
    settings: Settings, *, sweeper: bool = True, listen_fd: int | None = None
) -> None:
    """Serve the DICOM port; with `listen_fd`, as a sibling on a socket its parent opened."""
    listeners: list[socket.socket] = []
    if listen_fd is not None:
        die_with_parent()
    else:
        # First, so that a busy port stops the receiver before anything else starts.
        listeners = open_listeners(
            settings.dicom_host, settings.dicom_port, settings.receiver_processes
        )
        listen_fd = listeners[0].fileno()
    spool = Spool(
        settings.spool_path,
        settings.spool_min_free_mb * 1024 * 1024,
        settings.max_instance_mb * 1024 * 1024,
    )
    sessions = make_sessionmaker(make_engine(settings.db_url))
    publisher = Publisher(make_celery(settings))
    handler = StoreHandler(
        spool,
        sessions,
        lambda job_id: publisher.submit([job_id]),
        validate=settings.validate_on_receive,
    )
    policy = AssociationPolicy(
        SourceGate(sessions, open_when_empty=False), accept_loopback=settings.accept_loopback
    )
    server = start_receiver(
        host=settings.dicom_host,
        port=settings.dicom_port,
        ae_title=settings.ae_title,
        spool=spool,
        handler=handler,
        policy=policy,
        listen_fd=listen_fd,
    )
    _audit_activity(sessions, started=True)
    siblings = SiblingListeners([s.fileno() for s in listeners[1:]]) if listeners[1:] else None
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
