"""Receiver processes sharing the DICOM port.

pynetdicom runs each association in a Python thread, so one process is bound by one core's
worth of interpreter; parallel associations from a PACS scale only across processes. Each
process listens on its own SO_REUSEPORT socket, so the kernel spreads new associations
across them (one shared socket let whichever process woke first take every pending
association). A sibling binds its socket only once it is ready to serve: a socket opened
for a process still starting, or unable to start, would hold associations nobody answers.
The receiver that owns the port restarts a sibling that dies and stops them when it stops.

A sibling must not outlive that receiver, however it ends (`kill -9` included): it would
keep a share of the port that a restarted receiver cannot bind. Each sibling's stdin is a
pipe whose only write end the owner holds; when the owner is gone, for whatever reason, the
sibling reads end-of-file and stops accepting at once. (prctl's PR_SET_PDEATHSIG was not
enough: it fires on the exit of the parent *thread* that forked, is lost by a race with a
parent dying before the child sets it, and only delivered a signal that the sibling then
had to handle.)
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

SIBLING_OPTION = "--sibling"
LIFELINE_FD = 0  # a sibling's stdin
_BACKLOG = 128


@dataclass
class _Sibling:
    process: subprocess.Popen[bytes]
    started_at: float
    # The write end of the sibling's stdin: closed when this process ends, however it ends.
    lifeline: int
    restarts: int = 0

    def cut_lifeline(self) -> None:
        if self.lifeline >= 0:
            os.close(self.lifeline)
            self.lifeline = -1


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
        # Both ends are close-on-exec: no other child inherits the write end and keeps
        # the pipe open after this process died.
        read_end, write_end = os.pipe()
        try:
            process = subprocess.Popen(command, env=self._env, stdin=read_end)
        except OSError:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        return _Sibling(process, time.monotonic(), write_end, restarts)

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
            sibling.cut_lifeline()
            self._siblings[index] = self._spawn(sibling.restarts + 1 if quick_death else 0)

    def stop(self, timeout_s: float = 20.0) -> None:
        for sibling in self._siblings:
            sibling.cut_lifeline()
            if sibling.process.poll() is None:
                sibling.process.terminate()
        deadline = time.monotonic() + timeout_s
        for sibling in self._siblings:
            try:
                sibling.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                sibling.process.kill()
                sibling.process.wait()


class _Lifeline:
    """A sibling's watch on the receiver that started it. Until `on_parent_gone` says what
    to do, the sibling is still starting (it serves nothing) and simply exits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watching = False
        self._gone = False
        self._action: Callable[[], None] | None = None

    def watch(self) -> None:
        with self._lock:
            if self._watching:
                return
            self._watching = True
        threading.Thread(target=self._watch, name="amana-lifeline", daemon=True).start()

    def _watch(self) -> None:
        while True:
            try:
                if not os.read(LIFELINE_FD, 512):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        with self._lock:
            self._gone = True
            action = self._action
        if action is None:
            os._exit(0)
        action()

    def on_parent_gone(self, action: Callable[[], None]) -> None:
        with self._lock:
            self._action = action
            gone = self._gone
        if gone:
            action()


_LIFELINE = _Lifeline()


def watch_lifeline() -> None:
    """In a sibling, as early as possible: exit once the receiver that started it is gone,
    i.e. once stdin, the pipe it holds the write end of, ends."""
    _LIFELINE.watch()


def on_parent_gone(action: Callable[[], None]) -> None:
    """Once the sibling serves: call `action` (from a daemon thread) instead of exiting."""
    _LIFELINE.watch()
    _LIFELINE.on_parent_gone(action)
