"""Receiver processes sharing the DICOM port, and the sockets they listen on.

pynetdicom runs each association in a Python thread, so one process is bound by one core's
worth of interpreter; parallel associations from a PACS scale only across processes. The
receiver that owns the port opens one listening socket per process with SO_REUSEPORT, so
the kernel spreads new associations across them (one shared socket let whichever process
woke first take every pending association). It keeps every socket open and hands one to
each sibling, restarts a sibling that dies (connections waiting on its socket wait for the
new process rather than being reset), and stops them when it stops.
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

LISTEN_FD_OPTION = "--listen-fd"


@dataclass
class _Sibling:
    process: subprocess.Popen[bytes]
    started_at: float
    restarts: int = 0


_BACKLOG = 128


def open_listeners(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` listening sockets on (host, port). A plain bind comes first: when anything
    already listens there, another Amana included, this fails with "address in use" rather
    than quietly sharing the port (and the studies) with it."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        port = probe.getsockname()[1]
    finally:
        probe.close()
    listeners: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listeners.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if count > 1:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(_BACKLOG)
            sock.set_inheritable(True)
    except OSError:
        for sock in listeners:
            sock.close()
        raise
    return listeners


class SiblingListeners:
    def __init__(self, listen_fds: list[int]) -> None:
        self._fds = listen_fds
        self._siblings = [self._spawn(fd) for fd in listen_fds]

    def _spawn(self, fd: int, restarts: int = 0) -> _Sibling:
        # The sweeper runs in the parent only: one is enough and two would race.
        command = [
            sys.executable,
            "-m",
            "amana.cli",
            "receive",
            "--no-sweeper",
            LISTEN_FD_OPTION,
            str(fd),
        ]
        process = subprocess.Popen(command, pass_fds=(fd,), env=dict(os.environ))
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
            restarts = sibling.restarts + 1 if quick_death else 0
            self._siblings[index] = self._spawn(self._fds[index], restarts)

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
