"""The archive as a DICOMweb service (Orthanc, dcm4chee, a cloud archive): STOW-RS to store,
WADO-RS to read, QIDO-RS to look, through `dicomweb-client`.

Idempotent by SOP Instance UID: the archive keeps one instance per UID, so a batch stored
again after a crash (stored, then the catalog commit lost) leaves one copy. A store is
confirmed only when the STOW-RS answer lists every instance sent as referenced and none
as failed; anything else is ArchiveUnavailable, and the jobs wait for a later try.

Secrets (token, password) travel in the session's headers and auth, never in the URL, so
no log line or error text that quotes a URL carries them. TLS certificates are verified
(against AMANA_ARCHIVE_CA when set, else the system's CAs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from http import HTTPStatus
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pydicom
import requests
import retrying
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread

from archive.fsio import durable_write
from archive.stores import ArchiveUnavailable, StoreCredentials

log = logging.getLogger(__name__)
# dicomweb-client says "store instances" and names UIDs at INFO for every request: a line per
# batch in every worker's log, saying nothing an operator needs. Its warnings still show.
logging.getLogger("dicomweb_client").setLevel(logging.WARNING)

SCHEMES = {"dicomweb+http": "http", "dicomweb+https": "https"}
# Tries of one request whose connection failed (refused, reset, timed out) before the
# batch is given back to wait; HTTP 429/503/504 are retried inside dicomweb-client.
CONNECT_TRIES = 3
BACKOFF_S = 0.5
TIMEOUT_S = 60.0
_NOT_SUPPORTED = (HTTPStatus.METHOD_NOT_ALLOWED, HTTPStatus.NOT_IMPLEMENTED, HTTPStatus.NOT_FOUND)

T = TypeVar("T")


def service_url(url: str) -> str:
    """`dicomweb+https://host/path` -> `https://host/path`; refuses anything else, and
    credentials in the URL (they belong in the settings, where they are never printed)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError("the scheme must be dicomweb+http or dicomweb+https")
    if not parts.hostname:
        raise ValueError("the URL names no host")
    if parts.username or parts.password:
        raise ValueError("put credentials in AMANA_ARCHIVE_TOKEN or _USER/_PASSWORD, not the URL")
    return urlunsplit((SCHEMES[parts.scheme], parts.netloc, parts.path.rstrip("/"), "", ""))


def uids_of(relpath: Path) -> tuple[str, str, str]:
    """The (study, series, SOP instance) UIDs an archive path is built from."""
    study, series, name = relpath.parts[-3:]
    return study, series, name.removesuffix(".dcm")


class DicomWebStore:
    def __init__(self, url: str, credentials: StoreCredentials | None = None) -> None:
        self.url = service_url(url)
        creds = credentials or StoreCredentials()
        session = _Session()
        # Verification stays on: a private CA is added, never verification turned off.
        session.verify = str(creds.ca_file) if creds.ca_file else True
        if creds.token:
            session.headers["Authorization"] = f"Bearer {creds.token}"
        elif creds.user:
            session.auth = (creds.user, creds.password or "")
        self._session = session
        self._client = DICOMwebClient(self.url, session=session, timeout=TIMEOUT_S)
        self._client.set_http_retry_params(
            retry=True,
            max_attempts=3,
            wait_exponential_multiplier=200,
            retriable_error_codes=(
                HTTPStatus.TOO_MANY_REQUESTS,
                HTTPStatus.REQUEST_TIMEOUT,
                HTTPStatus.BAD_GATEWAY,
                HTTPStatus.SERVICE_UNAVAILABLE,
                HTTPStatus.GATEWAY_TIMEOUT,
            ),
        )

    def __repr__(self) -> str:
        parts = urlsplit(self.url)
        return f"DicomWebStore({parts.scheme}://{parts.hostname})"

    # --- the interface --------------------------------------------------------------------

    def put_many(self, items: Sequence[tuple[Path, bytes]]) -> None:
        if not items:
            return
        datasets = [dcmread(BytesIO(data)) for _, data in items]
        wanted = {uids_of(relpath)[2] for relpath, _ in items}
        answer = self._call("store", lambda: self._client.store_instances(datasets))
        stored = _sop_uids(answer, "ReferencedSOPSequence")
        failed = _sop_uids(answer, "FailedSOPSequence")
        missing = wanted - stored
        if missing or failed & wanted:
            raise ArchiveUnavailable(
                f"the archive confirmed {len(wanted - missing)} of {len(wanted)} instances"
            )

    def read(self, relpath: Path) -> bytes | None:
        study, series, sop = uids_of(relpath)
        try:
            found = self._call("read", lambda: self._client.retrieve_instance(study, series, sop))
        except _Missing:
            return None
        return _encoded(found)

    def withdraw(self, relpath: Path, dest: Path) -> bool:
        data = self.read(relpath)
        if data is None:
            return False
        # In quarantine first, then out of the archive: a crash in between leaves two
        # copies, never none, and the next try finds the archive's copy gone or deletes it.
        durable_write(dest, data, mode=0o600)
        self._delete(relpath)
        return True

    def replace(self, relpath: Path, data: bytes) -> None:
        # Deleted, then stored: an archive that keeps the first copy of a UID (as most
        # do by default) would otherwise keep the instance that had text in its pixels.
        self._delete(relpath)
        self.put_many([(relpath, data)])

    # --- what tests and operators look at ------------------------------------------------

    def count(self, sop_uid: str) -> int:
        """How many instances of this SOP Instance UID the archive holds (QIDO-RS)."""
        found = self._call(
            "search",
            lambda: self._client.search_for_instances(search_filters={"SOPInstanceUID": sop_uid}),
        )
        return len(found)

    # --- plumbing ------------------------------------------------------------------------

    def _delete(self, relpath: Path) -> None:
        """Remove one instance. DELETE on the WADO-RS resource is not in PS3.18 and many
        archives refuse it; Orthanc's DICOMweb plugin does, and Orthanc's own REST API,
        at the root its DICOMweb path hangs from, deletes by its instance id."""
        study, series, sop = uids_of(relpath)
        try:
            self._call("delete", lambda: self._client.delete_instance(study, series, sop))
        except _Missing:
            self._orthanc_delete(sop)
        if self.count(sop):
            raise ArchiveUnavailable("the archive did not delete an instance it was asked to")

    def _orthanc_delete(self, sop_uid: str) -> None:
        parts = urlsplit(self.url)
        root = urlunsplit((parts.scheme, parts.netloc, parts.path.rsplit("/", 1)[0], "", ""))

        def lookup() -> Any:
            reply = self._session.post(f"{root}/tools/lookup", data=sop_uid, timeout=TIMEOUT_S)
            reply.raise_for_status()
            return reply.json()

        def delete(url: str) -> None:
            self._session.delete(url, timeout=TIMEOUT_S).raise_for_status()

        for found in self._call("lookup", lookup):
            if found.get("Type") == "Instance":
                url = f"{root}/instances/{found['ID']}"
                self._call("delete", partial(delete, url))

    def _call(self, what: str, request: Callable[[], T]) -> T:
        """One request, tried again on a failed connection; errors become ArchiveUnavailable
        (or _Missing for a 404/405/501), with a text that names no URL."""
        for attempt in range(1, CONNECT_TRIES + 1):
            try:
                return request()
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt == CONNECT_TRIES:
                    log.warning("archive %s: %s after %d tries", what, type(exc).__name__, attempt)
                    raise ArchiveUnavailable(f"the archive is unreachable ({what})") from None
                time.sleep(BACKOFF_S * attempt)
            except requests.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else 0
                if status in _NOT_SUPPORTED and what in ("read", "delete"):
                    raise _Missing from None
                raise ArchiveUnavailable(f"the archive answered HTTP {status} ({what})") from None
            except retrying.RetryError:
                raise ArchiveUnavailable(f"the archive stayed busy ({what})") from None
            except (requests.RequestException, ValueError, KeyError) as exc:
                raise ArchiveUnavailable(
                    f"the archive's answer was unusable ({what}: {type(exc).__name__})"
                ) from None
        raise AssertionError("unreachable")


class _Session(requests.Session):
    """requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE in the environment replace a
    session's own CA file: AMANA_ARCHIVE_CA would be ignored wherever those are set (they
    are on many hosts). The session's CA file wins here; proxies from the environment
    still apply."""

    def merge_environment_settings(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        settings: dict[str, Any] = super().merge_environment_settings(*args, **kwargs)
        if isinstance(self.verify, str):
            settings["verify"] = self.verify
        return settings


class _Missing(Exception):
    """The archive has no such instance, or no such operation."""


def _sop_uids(answer: pydicom.Dataset, sequence: str) -> set[str]:
    return {str(item.ReferencedSOPInstanceUID) for item in answer.get(sequence, [])}


def _encoded(dataset: pydicom.Dataset) -> bytes:
    buffer = BytesIO()
    pydicom.dcmwrite(buffer, dataset)
    return buffer.getvalue()
