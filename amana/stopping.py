"""How a receiver process stops: promptly, without holding the DICOM port, in bounded time.

A sibling receiver once hung in its SIGTERM handler (setting a threading.Event inside a
handler re-enters the Event's lock when the signal lands while the main thread holds it)
while its listening socket stayed open: the kernel kept handing it associations nobody
accepted and a restarted receiver found the port taken for minutes. So here:

- signal handlers only set a flag; the main loop wakes through `signal.set_wakeup_fd`;
- the listening sockets are shut down first, the moment a stop is asked for, from whatever
  thread asks (shutdown() of a listening socket stops it listening for every descriptor
  of it, the duplicate pynetdicom serves included);
- from then on a watchdog ends the process after a deadline, however the rest goes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import threading
import time
from types import FrameType

log = logging.getLogger(__name__)


class Stopping:
    """The stop request of one receiver process. Create it in the main thread."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._listeners: list[socket.socket] = []
        self._lock = threading.Lock()
        self._watchdog_started = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only a flag: anything that takes a lock here can deadlock with the main thread.
        if self.reason is None:
            self.reason = signal.Signals(signum).name

    def guard(self, listener: socket.socket) -> None:
        """Shut `listener` down as soon as a stop is asked for (now, if it already was)."""
        with self._lock:
            self._listeners.append(listener)
            stopped = self.reason is not None
        if stopped:
            _stop_listening(listener)

    def request(self, reason: str, deadline_s: float | None = None) -> None:
        """Ask for a stop from any thread; stops accepting at once and, given `deadline_s`,
        ends the process that long after the first such request whatever happens next."""
        with self._lock:
            if self.reason is None:
                self.reason = reason
            listeners = list(self._listeners)
            start_watchdog = deadline_s is not None and not self._watchdog_started
            self._watchdog_started = self._watchdog_started or start_watchdog
        if start_watchdog:
            assert deadline_s is not None
            exit_after(deadline_s, reason)
        for listener in listeners:
            _stop_listening(listener)
        # An OSError: the wake-up byte of an earlier request is still unread.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def wait(self, timeout_s: float) -> bool:
        """Sleep until a stop is asked for or `timeout_s` passed; whether one was asked."""
        if self.reason is None:
            select.select([self._wake_r], [], [], timeout_s)
            try:
                while self._wake_r.recv(512):
                    pass
            except OSError:
                pass
        return self.reason is not None

    def begin(self, deadline_s: float) -> str:
        """The stop has started: stop accepting now, and end the process after `deadline_s`
        whatever happens next. Returns the reason."""
        reason = self.reason or "stop"
        self.request(reason, deadline_s)
        return reason


def _stop_listening(listener: socket.socket) -> None:
    # An OSError: not listening (any more), or already closed.
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)


def exit_after(deadline_s: float, reason: str) -> None:
    def _watchdog() -> None:
        time.sleep(deadline_s)
        # Straight to stderr: the thread that hangs may hold the logging handlers' lock.
        message = f"receiver did not stop within {deadline_s:.0f} s ({reason}); exiting\n"
        os.write(2, message.encode())
        os._exit(3)

    threading.Thread(target=_watchdog, name="amana-stop-watchdog", daemon=True).start()
