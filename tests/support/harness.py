"""Runs Amana the way an operator does: its own command, in its own processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.services import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]


class Amana:
    def __init__(self, home: Path, **extra_env: str) -> None:
        self.home = home
        self.dicom_port = free_port()
        self.api_port = free_port()
        self.env = dict(os.environ)
        self.env.update(
            {
                "AMANA_HOME": str(home),
                "AMANA_DICOM_PORT": str(self.dicom_port),
                "AMANA_DICOM_HOST": "127.0.0.1",
                "AMANA_API_PORT": str(self.api_port),
                "AMANA_SWEEP_INTERVAL_S": "1",
                "AMANA_STUDY_STABLE_AFTER_S": "2",
                "AMANA_KEY_FILE": str(home / "secrets" / "pseudonym.key"),
                "AMANA_SPOOL_MIN_FREE_MB": "16",
                "AMANA_ACCEPT_LOOPBACK": "true",
            }
        )
        self.env.update(extra_env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = home / "amana.log"

    def cli(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "amana.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            cwd=REPO,
        )

    def start(self, *command: str) -> Amana:
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "amana.cli", *(command or ("run",))],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            # Its own process group, so that `kill` takes the command and all its children.
            start_new_session=True,
        )
        wait_port("127.0.0.1", self.dicom_port, timeout=90)
        return self

    def kill(self) -> None:
        """SIGKILL the command and every process it started, as a power cut would."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def studies(self) -> list[dict[str, Any]]:
        out = self.cli("catalog", "studies", "--format", "json").stdout
        return list(json.loads(out))

    def quarantine(self) -> list[dict[str, Any]]:
        out = self.cli("quarantine", "list", "--format", "json").stdout
        return list(json.loads(out))

    def job_states(self) -> str:
        """Jobs per state in the embedded catalog, read directly (no PHI: states and counts
        only), to explain a wait that timed out."""
        import sqlite3

        path = self.home / "catalog.db"
        if not path.exists():
            return "no embedded catalog"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
            rows = db.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
        return ", ".join(f"{status}={count}" for status, count in rows) or "no jobs"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# dcmtk's storescu proposes one compressed transfer syntax per run, chosen by option.
_STORESCU_TS_OPTION = {
    "1.2.840.10008.1.2.5": "-xr",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.1.99": "-xd",
}


def storescu(
    port: int, files: list[Path], *, ae_title: str = "AMANA"
) -> subprocess.CompletedProcess[str]:
    """Send files as a PACS would, one storescu run per compressed transfer syntax."""
    import pydicom

    groups: dict[str, list[Path]] = {}
    for path in files:
        ts = str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        groups.setdefault(_STORESCU_TS_OPTION.get(ts, "-x="), []).append(path)
    env = dict(os.environ, TCP_NODELAY="1")
    result: subprocess.CompletedProcess[str] | None = None
    for option, group in groups.items():
        result = subprocess.run(
            [
                "storescu",
                "-R",
                option,
                "-aet",
                "TESTPACS",
                "-aec",
                ae_title,
                "127.0.0.1",
                str(port),
                *[str(f) for f in group],
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            return result
    assert result is not None
    return result


def echoscu(port: int, *, ae_title: str = "AMANA", calling_ae: str = "TESTPACS") -> bool:
    result = subprocess.run(
        ["echoscu", "-aet", calling_ae, "-aec", ae_title, "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode == 0


def wait_until(
    predicate: Callable[[], bool],
    timeout: float = 180.0,
    interval: float = 0.5,
    describe: Callable[[], str] | None = None,
) -> None:
    """Polls `predicate` until it holds. A predicate that runs an `amana` command costs about
    a second of CPU, so the pause after each look grows with what the look cost: on two
    cores a tight poll would slow the pipeline it waits for. On timeout, `describe` says
    where things stood (e.g. the jobs per state), so a CI failure explains itself."""
    deadline = time.monotonic() + timeout
    while True:
        started = time.monotonic()
        if predicate():
            return
        if time.monotonic() > deadline:
            state = f": {describe()}" if describe is not None else ""
            raise TimeoutError(f"condition not reached in {timeout:.0f} s{state}")
        time.sleep(max(interval, 2 * (time.monotonic() - started)))
