"""The DICOM endpoint: C-ECHO and C-STORE, persisting before it says Success.

The handler never parses the dataset: pynetdicom writes the received stream (with a file
meta header) to a temporary file on the spool's filesystem, and the handler only renames
it into the spool and commits a job row.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from typing import Any

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
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from amana.errors import AmanaError, RetryableError
from amana.status_map import DIMSE_SUCCESS, dimse_status
from archive.jobs import create_job
from ingest.spool import Spool
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


class StoreHandler:
    def __init__(
        self,
        spool: Spool,
        sessions: sessionmaker[Session],
        on_committed: Callable[[int], None],
        *,
        validate: bool = True,
    ) -> None:
        self.validate = validate
        self.spool = spool
        self.sessions = sessions
        self.on_committed = on_committed

    def __call__(self, event: Any) -> int:
        try:
            job_id = self._persist(event)
        except AmanaError as exc:
            log.warning("C-STORE refused: %s", exc)
            return dimse_status(exc)
        except Exception as exc:  # never Success for data not stored
            log.error("C-STORE failed unexpectedly: %s", type(exc).__name__)
            return dimse_status(exc)
        self.on_committed(job_id)
        return DIMSE_SUCCESS

    def _persist(self, event: Any) -> int:
        if self.validate:
            check_header(event.dataset_path, str(event.context.transfer_syntax))
        name, size = self.spool.adopt(event.dataset_path)
        calling_ae = str(event.assoc.requestor.ae_title).strip() or None
        try:
            with self.sessions.begin() as session:
                return create_job(
                    session,
                    spool_name=name,
                    size_bytes=size,
                    calling_ae=calling_ae,
                    source_kind="dicom",
                )
        except SQLAlchemyError as exc:
            # No job row means no Success: drop the copy, the sender keeps the original.
            self.spool.discard(name)
            raise RetryableError("catalog unavailable", code="db_unavailable") from exc


def _handle_echo(_event: Any) -> int:
    return DIMSE_SUCCESS


def build_ae(ae_title: str) -> AE:
    ae = AE(ae_title=ae_title)
    ae.require_called_aet = True
    ae.maximum_pdu_size = 0  # unlimited: fewer, larger P-DATA fragments
    for cx in AllStoragePresentationContexts:
        assert cx.abstract_syntax is not None
        ae.add_supported_context(cx.abstract_syntax, ACCEPTED_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    return ae


def start_receiver(
    *,
    host: str,
    port: int,
    ae_title: str,
    spool: Spool,
    handler: StoreHandler,
    block: bool,
) -> ThreadedAssociationServer | None:
    # Received datasets go straight to a temporary file next to the spool, so adopting it is
    # a rename on the same filesystem rather than a copy.
    _config.STORE_RECV_CHUNKED_DATASET = True
    tempfile.tempdir = str(spool.tmp)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    ae = build_ae(ae_title)
    handlers: list[Any] = [(evt.EVT_C_STORE, handler), (evt.EVT_C_ECHO, _handle_echo)]
    return ae.start_server((host, port), block=block, evt_handlers=handlers)
