"""A throwaway Orthanc (Debian's `orthanc` with `orthanc-dicomweb`) as the DICOMweb archive:
its own process, free port, storage folder and configuration. The machine's own Orthanc
service, if any, is never used."""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.services import free_port

USER = "amana"
PASSWORD = "made-up-archive-password"
# Where Debian's orthanc-dicomweb installs its plugin (a link into /usr/lib/orthanc).
PLUGIN_GLOBS = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so*",
    "/usr/lib/orthanc/libOrthancDicomWeb.so*",
)


def dicomweb_plugin() -> str:
    for pattern in PLUGIN_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise RuntimeError("the Orthanc DICOMweb plugin is missing: apt-get install orthanc-dicomweb")


class Orthanc:
    """`auth=False`: an Orthanc open on loopback, as a dataset export target named by its
    address alone."""

    def __init__(self, root: Path, *, auth: bool = True) -> None:
        binary = shutil.which("Orthanc")
        if binary is None:
            raise RuntimeError("Orthanc is missing: apt-get install orthanc orthanc-dicomweb")
        self.binary = binary
        self.root = root
        self.auth = auth
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        (root / "storage").mkdir(parents=True, exist_ok=True)
        self.config = root / "orthanc.json"
        self.config.write_text(json.dumps(self._config(), indent=2))

    def _config(self) -> dict[str, Any]:
        return {
            "Name": "amana-test-archive",
            "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "storage"),
            "HttpPort": self.port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": self.auth,
            "RegisteredUsers": {USER: PASSWORD} if self.auth else {},
            # No DICOM port: the archive is reached over DICOMweb only.
            "DicomServerEnabled": False,
            "Plugins": [dicomweb_plugin()],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
            "StorageCompression": False,
        }

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def archive_url(self) -> str:
        return f"dicomweb+http://127.0.0.1:{self.port}/dicom-web"

    def amana_env(self) -> dict[str, str]:
        return {
            "AMANA_ARCHIVE_URL": self.archive_url,
            "AMANA_ARCHIVE_USER": USER,
            "AMANA_ARCHIVE_PASSWORD": PASSWORD,
        }

    def start(self) -> Orthanc:
        log = (self.root / "orthanc.log").open("ab")
        self.proc = subprocess.Popen(
            [self.binary, str(self.config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited: see {self.root / 'orthanc.log'}")
            try:
                if self.get("/system").get("Version"):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("Orthanc did not answer within 60 s")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def get(self, path: str) -> Any:
        reply = httpx.get(
            self.base + path, auth=(USER, PASSWORD) if self.auth else None, timeout=30
        )
        reply.raise_for_status()
        return reply.json()

    def instance_ids(self) -> list[str]:
        """Orthanc's own ids of every instance it holds (its REST API, not DICOMweb)."""
        return list(self.get("/instances"))

    def sop_uids(self) -> list[str]:
        """The SOP Instance UID of every instance held, duplicates included."""
        return [
            str(self.get(f"/instances/{ident}")["MainDicomTags"]["SOPInstanceUID"])
            for ident in self.instance_ids()
        ]

    def file(self, ident: str) -> bytes:
        reply = httpx.get(
            f"{self.base}/instances/{ident}/file",
            auth=(USER, PASSWORD) if self.auth else None,
            timeout=30,
        )
        reply.raise_for_status()
        return reply.content

    def file_of(self, sop_uid: str) -> bytes:
        """The stored file of the instance `sop_uid` (Orthanc's REST API)."""
        reply = httpx.post(
            f"{self.base}/tools/find",
            json={"Level": "Instance", "Query": {"SOPInstanceUID": sop_uid}},
            auth=(USER, PASSWORD) if self.auth else None,
            timeout=30,
        )
        reply.raise_for_status()
        (ident,) = reply.json()
        return self.file(str(ident))
