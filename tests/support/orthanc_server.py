"""A real Orthanc with its DICOMweb plugin for the tests (Debian's `orthanc` and
`orthanc-dicomweb`): its own storage folder, free loopback ports, stopped afterwards."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.services import free_port

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


@contextmanager
def orthanc(folder: Path, *, start_timeout_s: float = 60.0) -> Iterator[str]:
    """An Orthanc serving DICOMweb on loopback; yields its base URL (http://127.0.0.1:N)."""
    folder.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "amana-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpServerEnabled": True,
        "Plugins": [DICOMWEB_PLUGIN],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    logs = (folder / "orthanc.log").open("wb")
    process = subprocess.Popen(
        [ORTHANC, str(folder / "orthanc.json")], stdout=logs, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"Orthanc exited: see {folder / 'orthanc.log'}")
            try:
                with urllib.request.urlopen(f"{base}/dicom-web/studies", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise RuntimeError("Orthanc did not start in time") from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        logs.close()


def instance_uids(base: str) -> set[str]:
    """Every SOP Instance UID Orthanc holds (its REST API, not DICOMweb: a second opinion)."""
    with urllib.request.urlopen(f"{base}/instances?expand", timeout=30) as answer:
        items = json.load(answer)
    return {item["MainDicomTags"]["SOPInstanceUID"] for item in items}


def instance_file(base: str, sop_uid: str) -> bytes:
    request = urllib.request.Request(
        f"{base}/tools/find",
        data=json.dumps({"Level": "Instance", "Query": {"SOPInstanceUID": sop_uid}}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        (orthanc_id,) = json.load(answer)
    with urllib.request.urlopen(f"{base}/instances/{orthanc_id}/file", timeout=30) as answer:
        data: bytes = answer.read()
    return data
