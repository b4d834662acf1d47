"""An export's instances sent to a DICOMweb server with STOW-RS (`--to
dicomweb+https://host/dicom-web`), through `dicomweb-client` as the archive's own DICOMweb
store does. The manifest, card and checksums stay in a local folder.

Resumable like a folder export: before its first instance of a study the sink asks the
server (QIDO-RS) which instances of that study it already holds, and does not send those
again. Instances are sent in small batches so that one request stays well under a server's
upload limit. Messages name the server and HTTP status only, never a value of a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from anonymizer.errors import RejectError, RetryableError

SCHEMES = {"dicomweb+http": "http", "dicomweb+https": "https"}
SOP_INSTANCE_UID = "00080018"
FAILED_SOP_SEQUENCE = "FailedSOPSequence"


def is_dicomweb(target: str) -> bool:
    return target.partition("://")[0] in SCHEMES


def service_url(target: str) -> str:
    """`dicomweb+https://host/dicom-web` -> `https://host/dicom-web`. Credentials in the
    address are refused: it goes in the audit trail and in the card."""
    scheme, sep, rest = target.partition("://")
    if scheme not in SCHEMES or not sep:
        raise RejectError("a DICOMweb target is dicomweb+http(s)://host/path", code="bad_target")
    parts = urlsplit(f"{SCHEMES[scheme]}://{rest}")
    if not parts.hostname:
        raise RejectError("a DICOMweb target names a host", code="bad_target")
    if parts.username or parts.password:
        raise RejectError("a DICOMweb target carries no credentials", code="bad_target")
    if parts.query or parts.fragment:
        raise RejectError("a DICOMweb target has no query or fragment", code="bad_target")
    return f"{SCHEMES[scheme]}://{rest}".rstrip("/")


class DicomwebSink:
    def __init__(self, target: str, *, batch: int = 20, timeout_s: float = 60.0) -> None:
        self.url = service_url(target)
        self.client = DICOMwebClient(self.url, timeout=timeout_s)
        self.batch = batch
        self._pending: list[Dataset] = []
        self._held: dict[str, set[str]] = {}

    def _already_held(self, study_uid: str) -> set[str]:
        if study_uid not in self._held:
            try:
                found = self.client.search_for_instances(
                    study_instance_uid=study_uid, get_remaining=True
                )
            except requests.HTTPError as exc:
                if exc.response is not None and exc.response.status_code == 404:
                    found = []
                else:
                    raise self._failed(exc) from exc
            except requests.RequestException as exc:
                raise self._failed(exc) from exc
            self._held[study_uid] = {
                str(item[SOP_INSTANCE_UID]["Value"][0])
                for item in found
                if SOP_INSTANCE_UID in item and item[SOP_INSTANCE_UID].get("Value")
            }
        return self._held[study_uid]

    def put(self, relpath: str, data: bytes, digest: str, row: Mapping[str, Any]) -> bool:
        if str(row["sop_uid"]) in self._already_held(str(row["study_uid"])):
            return False
        self._pending.append(pydicom.dcmread(BytesIO(data)))
        if len(self._pending) >= self.batch:
            self._flush()
        return True

    def close(self) -> None:
        self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        try:
            answer = self.client.store_instances(self._pending)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if 400 <= status < 500 and status not in (408, 429):
                raise RejectError(
                    f"the DICOMweb server {self.url} refused the instances (HTTP {status})",
                    code="target_refused",
                ) from exc
            raise self._failed(exc) from exc
        except requests.RequestException as exc:
            raise self._failed(exc) from exc
        failed = answer.get(FAILED_SOP_SEQUENCE) if answer is not None else None
        if failed:
            raise RejectError(
                f"the DICOMweb server {self.url} refused {len(failed)} instance(s)",
                code="target_refused",
            )
        for ds in self._pending:
            self._held.setdefault(str(ds.StudyInstanceUID), set()).add(str(ds.SOPInstanceUID))
        self._pending = []

    def _failed(self, exc: Exception) -> RetryableError:
        return RetryableError(
            f"the DICOMweb server {self.url} did not answer ({type(exc).__name__}); "
            "run the export again to resume",
            code="target_unavailable",
        )
