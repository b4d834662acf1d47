"""One flush of the spool directory for every instance renamed into it at the same time,
whichever association it came on.

A rename into the spool is durable only once the directory is flushed, and an instance is
answered Success only then. Each C-STORE handler thread asks for a flush that starts after
its own rename and waits. The first to ask while no flush runs leads: it flushes, then wakes
the others. Those that asked while a flush was running need the next one (that flush may
have started before their rename), and one of them leads it. With one association a group
is one instance and this costs one directory fsync per instance, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class _Round:
    """One flush and the callers it answers."""

    def __init__(self) -> None:
        self.done = False
        self.error: BaseException | None = None


class GroupedFlush:
    def __init__(self, flush: Callable[[], None]) -> None:
        self._flush = flush
        self._cond = threading.Condition()
        # The round new callers join: it starts only after the running one has ended, so
        # it starts after their renames.
        self._next: _Round | None = None
        self._running = False

    def __call__(self) -> None:
        """Return once a flush that began after this call has succeeded; raise its error."""
        with self._cond:
            if self._next is None:
                self._next = _Round()
            mine = self._next
            while not mine.done:
                if not self._running and self._next is mine:
                    self._running = True
                    self._next = None
                    break
                self._cond.wait()
            else:
                if mine.error is not None:
                    raise mine.error
                return
        try:
            self._flush()
        except BaseException as exc:  # every caller of this round gets it
            mine.error = exc
        with self._cond:
            mine.done = True
            self._running = False
            self._cond.notify_all()
        if mine.error is not None:
            raise mine.error
