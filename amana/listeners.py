"""Sibling receiver processes that accept on the parent's listening socket.

pynetdicom runs each association in a Python thread, so one process is bound by one core's
worth of interpreter; parallel associations from a PACS scale only across processes. The
parent binds the DICOM port and hands the listening socket to its siblings (the pre-fork
model), restarts any that die, and stops them when it stops.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

LISTEN_FD_OPTION = "--listen-fd"


@dataclass
class _Sibling:
    process: subprocess.Popen[bytes]
    started_at: float
    restarts: int = 0


class SiblingListeners:
    def __init__(self, listen_fd: int, count: int) -> None:
        self._fd = listen_fd
        self._siblings = [self._spawn() for _ in range(count)]

    def _spawn(self, restarts: int = 0) -> _Sibling:
        # The sweeper runs in the parent only: one is enough and two would race.
        command = [
            sys.executable,
            "-m",
            "amana.cli",
            "receive",
            "--no-sweeper",
            LISTEN_FD_OPTION,
            str(self._fd),
        ]
        process = subprocess.Popen(command, pass_fds=(self._fd,), env=dict(os.environ))
        return _Sibling(process, time.monotonic(), restarts)

    def restart_dead(self) -> None:
        for index, sibling in enumerate(self._siblings):
            code = sibling.process.poll()
            if code is None:
                continue
            # A sibling that keeps dying at start-up is retried ever more slowly.
            quick_death = time.monotonic() - sibling.started_at < 30
            if quick_death and time.monotonic() - sibling.started_at < min(30, 2**sibling.restarts):
                continue
            log.error("receiver process exited with %s; restarting it", code)
            self._siblings[index] = self._spawn(sibling.restarts + 1 if quick_death else 0)

    def stop(self, timeout_s: float = 20.0) -> None:
        for sibling in self._siblings:
            if sibling.process.poll() is None:
                sibling.process.terminate()
        deadline = time.monotonic() + timeout_s
        for sibling in self._siblings:
            try:
                sibling.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                sibling.process.kill()
                sibling.process.wait()


def die_with_parent() -> None:
    """A sibling must not outlive the receiver that owns the port (Linux only)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
