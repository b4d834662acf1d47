"""Receiver processes sharing the DICOM port.

pynetdicom runs each association in a Python thread, so one process is bound by one core's
worth of interpreter; parallel associations from a PACS scale only across processes. Each
process listens on its own SO_REUSEPORT socket, so the kernel spreads new associations
across them (one shared socket let whichever process woke first take every pending
association). A sibling binds its socket only once it is ready to serve: a socket opened
for a process still starting, or unable to start, would hold associations nobody answers.
The receiver that owns the port restarts a sibling that dies and stops them when it stops.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

SIBLING_OPTION = "--sibling"
_BACKLOG = 128


@dataclass
class _Sibling:
    process: subprocess.Popen[bytes]
    started_at: float
    restarts: int = 0


def bind_listener(host: str, port: int, *, shared: bool) -> socket.socket:
    """A listening socket on (host, port); `shared` lets other receiver processes of this
    service account listen on the same port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def open_port(host: str, port: int, processes: int) -> socket.socket:
    """The owner's listening socket. A plain bind comes first: when anything already
    listens there, another Amana included, this fails with "address in use" rather than
    quietly sharing the port (and the studies) with it."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        port = probe.getsockname()[1]
    finally:
        probe.close()
    return bind_listener(host, port, shared=processes > 1)


class SiblingListeners:
    def __init__(self, port: int, count: int) -> None:
        # The port actually bound, which differs from the setting when that is 0.
        self._env = dict(os.environ, AMANA_DICOM_PORT=str(port))
        self._siblings = [self._spawn() for _ in range(count)]

    def _spawn(self, restarts: int = 0) -> _Sibling:
        # The sweeper runs in the parent only: one is enough and two would race.
        command = [sys.executable, "-m", "amana.cli", "receive", "--no-sweeper", SIBLING_OPTION]
        return _Sibling(subprocess.Popen(command, env=self._env), time.monotonic(), restarts)

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
