"""The DICOM endpoint: C-ECHO and C-STORE, persisting before it says Success.

The handler never decodes the dataset: pynetdicom writes the received stream (with a file
meta header) to a temporary file on the spool's filesystem, and the handler renames it
into the spool; the spool is the record, and job rows follow (ingest/job_batcher.py).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import ssl
import tempfile
import threading
import weakref
from collections.abc import Callable
from typing import Any, cast

from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, AllStoragePresentationContexts, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.errors import AmanaError, RejectError, RetryableError
from archive.governance.sources import SourceGate
from archive.work.jobs import NewJob
from ingest.association_log import (
    AssociationTally,
    Outcome,
    failure_status,
    on_rejected,
    peer,
)
from ingest.dimse_status import DIMSE_SUCCESS, dimse_status
from ingest.dir_flush import GroupedFlush
from ingest.job_batcher import AssociationDone, JobBatcher
from ingest.receive_files import installed_for
from ingest.spool import Spool
from ingest.tls import DeferredHandshakeMixin, peer_tls
from ingest.validate import check_header

log = logging.getLogger(__name__)

ACCEPTED_TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
]


class Attribution:
    """The registered source of each open association, so its jobs carry the source whose
    profile and region their instances get. Written at A-ASSOCIATE, read per C-STORE."""

    def __init__(self) -> None:
        # Weak keys: an association that ends without a release or abort event leaves no
        # entry behind, and a new association can never inherit an old one's source.
        self._by_assoc: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def set(self, assoc: Any, source_id: int | None) -> None:
        if source_id is not None:
            with self._lock:
                self._by_assoc[assoc] = source_id

    def get(self, assoc: Any) -> int | None:
        with self._lock:
            return self._by_assoc.get(assoc)

    def forget(self, assoc: Any) -> None:
        with self._lock:
            self._by_assoc.pop(assoc, None)


class AssociationPolicy:
    """Who may send: registered and enabled sources (AE title + address), plus loopback when
    the embedded `amana run` says so, so that a first try on one machine works."""

    def __init__(
        self, gate: SourceGate, *, accept_loopback: bool, spool: Spool | None = None
    ) -> None:
        self.gate = gate
        self.accept_loopback = accept_loopback
        self.attribution = Attribution()
        self.spool = spool

    def on_requested(self, event: Any) -> None:
        if self.spool is not None and not self.spool.has_space():
            # Before any instance arrives: the PACS keeps the study and tries again later.
            # Rejected-transient (0x02), service provider (0x03), local limit exceeded (0x02).
            log.warning("association refused: spool disk below its free-space threshold")
            event.assoc.acse.send_reject(0x02, 0x03, 0x02)
            event.assoc.kill()
            return
        requestor = event.assoc.requestor
        address = str(requestor.address)
        decision = self.gate.check(
            str(requestor.primitive.calling_ae_title).strip(),
            address,
            waive_unknown=self.accept_loopback and _is_loopback(address),
            tls=peer_tls(event.assoc),
        )
        if decision.allowed:
            self.attribution.set(event.assoc, decision.source_id)
            return
        log.warning("association %s refused: %s", peer(event.assoc), decision.reason)
        # 0x02 (rejected-transient) when the catalog is down, so the PACS tries again later;
        # source 0x01 (service user), reason 0x03 (calling AE title not recognized).
        event.assoc.acse.send_reject(0x02 if decision.transient else 0x01, 0x01, 0x03)
        event.assoc.kill()


def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class StoreHandler:
    """Answers Success once the instance's file is durable in the spool: renamed under a
    name carrying what its job row needs (ingest/spool_names.py), fsynced, and the spool
    directory flushed (one flush for the instances renamed at the same time). Job rows and
    the per-association audit event come behind, from `jobs` (ingest/job_batcher.py); the
    job ids reach the queue through the sink attached to `sessions`, after their commit."""

    def __init__(
        self,
        spool: Spool,
        sessions: sessionmaker[Session],
        *,
        validate: bool = True,
        node: str | None = None,
    ) -> None:
        self.validate = validate
        # The ingest node whose spool this is: every job made here is its.
        self.node = node
        self.spool = spool
        self.sessions = sessions
        self.flush_incoming = GroupedFlush(spool.flush_incoming)
        # Started by `start_receiver` (`start_jobs`), stopped by the receiver process after
        # its last association (`stop_jobs`).
        self.jobs = JobBatcher(sessions)
        self._received: dict[int, list[str]] = {}
        self._lock = threading.Lock()
        # Shared with the association policy by `start_receiver`.
        self.attribution = Attribution()
        self.tally = AssociationTally()
        # Set by `start_receiver`: a data set cut off on arrival (size, free space).
        self.refused_while_receiving: Callable[[Any], AmanaError | None] = lambda _event: None
        self._jobs_started = False

    def start_jobs(self) -> None:
        """Start writing job rows (once, whichever server starts first)."""
        with self._lock:
            if not self._jobs_started:
                self._jobs_started = True
                self.jobs.start()

    def stop_jobs(self, timeout_s: float) -> int:
        """Write the rows still waiting, for at most `timeout_s`; how many were left (the
        recovery scan makes them when the receiver starts again)."""
        with self._lock:
            started = self._jobs_started
        return self.jobs.stop(timeout_s) if started else 0

    def on_association_end(self, event: Any) -> None:
        """One log line and one audit event per association: who sent how many instances
        (their job ids, once the batcher has written their rows)."""
        self.attribution.forget(event.assoc)
        self.tally.ended(event.assoc, "released" if event.event is evt.EVT_RELEASED else "aborted")
        with self._lock:
            names = self._received.pop(id(event.assoc), [])
        if not names:
            return
        requestor = event.assoc.requestor
        self.jobs.submit(
            AssociationDone(str(requestor.ae_title).strip(), str(requestor.address), tuple(names))
        )

    def __call__(self, event: Any) -> int | Dataset:
        try:
            name = self._persist(event)
        except AmanaError as exc:
            refused = isinstance(exc, RejectError)
            self.tally.count(event.assoc, Outcome.REFUSED if refused else Outcome.FAILED)
            log.warning(
                "C-STORE from %s %s: %s", peer(event.assoc), "refused" if refused else "failed", exc
            )
            return failure_status(dimse_status(exc), exc)
        except Exception as exc:  # never Success for data not stored
            self.tally.count(event.assoc, Outcome.FAILED)
            log.error(
                "C-STORE from %s failed unexpectedly: %s", peer(event.assoc), type(exc).__name__
            )
            return failure_status(dimse_status(exc), exc)
        self.tally.count(event.assoc, Outcome.RECEIVED)
        with self._lock:
            self._received.setdefault(id(event.assoc), []).append(name)
        return DIMSE_SUCCESS

    def _persist(self, event: Any) -> str:
        refusal = self.refused_while_receiving(event)
        if refusal is not None:
            raise refusal
        if self.validate:
            check_header(event.dataset_path, str(event.context.transfer_syntax))
        calling_ae = str(event.assoc.requestor.ae_title).strip() or None
        source_id = self.attribution.get(event.assoc)
        name, size = self.spool.adopt_received(event.dataset_path, calling_ae, source_id)
        try:
            self.flush_incoming()
        except OSError as exc:
            # Not durable, so not answered Success: drop the copy, the sender keeps its own.
            self.spool.discard(name)
            raise RetryableError("could not persist to the spool", code="spool_write") from exc
        # Durable from here: the row is the batcher's to write, or the recovery scan's.
        self.jobs.submit(NewJob(name, size, calling_ae, "dicom", source_id, self.node))
        return name


def _handle_echo(_event: Any) -> int:
    return DIMSE_SUCCESS


def build_ae(ae_title: str) -> AE:
    ae = AE(ae_title=ae_title)
    ae.require_called_aet = True
    # Large, so P-DATA comes in few fragments; bounded, so a peer cannot make one PDU hold
    # a whole oversized instance in memory before the size limit counts it (receive_files).
    ae.maximum_pdu_size = 4 * 1024 * 1024
    for cx in AllStoragePresentationContexts:
        assert cx.abstract_syntax is not None
        ae.add_supported_context(cx.abstract_syntax, ACCEPTED_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    return ae


# Accept waits at most this long, so the server notices a shutdown promptly.
_ACCEPT_WAIT_S = 0.5


class SharedSocketServer(ThreadedAssociationServer):
    """pynetdicom's threaded server on a listening socket opened by the receiver process
    (amana/listeners.py)."""

    listen_fd: int

    def server_bind(self) -> None:
        assert self.socket is not None
        self.socket.close()
        # A duplicate: the caller keeps owning the socket it opened.
        self.socket = socket.socket(fileno=os.dup(self.listen_fd))
        self.server_address = self.socket.getsockname()
        self.socket.settimeout(_ACCEPT_WAIT_S)

    def server_activate(self) -> None:
        # Already listening, with the backlog its owner chose; listen() here would shrink it.
        pass


def start_receiver(
    *,
    host: str,
    port: int,
    ae_title: str,
    spool: Spool,
    handler: StoreHandler,
    policy: AssociationPolicy,
    listen_fd: int,
    ssl_context: ssl.SSLContext | None = None,
) -> SharedSocketServer:
    """Serve C-ECHO and C-STORE in a background thread on `listen_fd`, a listening socket
    on (host, port) opened by the receiver process; over TLS when `ssl_context` is given."""
    # Received datasets go straight to a temporary file next to the spool, so adopting it is
    # a rename on the same filesystem rather than a copy.
    _config.STORE_RECV_CHUNKED_DATASET = True
    tempfile.tempdir = str(spool.tmp)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    ae = build_ae(ae_title)
    handler.attribution = policy.attribution
    # Size and free-space limits hold while the data set arrives, not once it is complete.
    receive_files = installed_for(spool)
    handler.refused_while_receiving = receive_files.refusal
    handler.start_jobs()
    handlers: list[Any] = [
        (evt.EVT_REQUESTED, policy.on_requested),
        (evt.EVT_REJECTED, on_rejected),
        (evt.EVT_C_STORE, handler),
        (evt.EVT_C_ECHO, _handle_echo),
        (evt.EVT_RELEASED, handler.on_association_end),
        (evt.EVT_ABORTED, handler.on_association_end),
        (evt.EVT_ABORTED, receive_files.on_association_end),
        (evt.EVT_CONN_CLOSE, receive_files.on_association_end),
    ]
    bases: tuple[type, ...] = (SharedSocketServer,)
    if ssl_context is not None:
        bases = (DeferredHandshakeMixin, SharedSocketServer)
    server_class = type("AmanaAssociationServer", bases, {"listen_fd": listen_fd})
    server = cast(
        SharedSocketServer,
        ae.make_server(
            (host, port),
            evt_handlers=handlers,
            server_class=server_class,
            ssl_context=ssl_context,
        ),
    )
    # AE.start_server does the same two steps; shutdown() expects the server in ae._servers.
    ae._servers.append(server)
    name = "amana-scp-tls" if ssl_context is not None else "amana-scp"
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server
