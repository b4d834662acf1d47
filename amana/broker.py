"""Is the broker reachable: one probe, and the state a process last saw, logged once per
change.

The receiver must keep accepting while the broker is away (the catalog holds every job), so
the broker's state is something to report and to recover from, never a reason to refuse.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import TypeVar

from celery import Celery

log = logging.getLogger(__name__)

T = TypeVar("T")

# Short: a probe runs in the publisher's thread and in /health, and an unreachable host
# (no RST, only silence) must not hold either for long.
PROBE_TIMEOUT_S = 2.0


class BrokerState(enum.StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


def probe(app: Celery, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when a fresh connection to the broker opens (Redis answers a PING while it
    opens); otherwise the error's class name, which carries no message text."""
    conn = app.connection_for_write(connect_timeout=timeout_s)
    try:
        conn.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, interval_max=0, timeout=timeout_s
        )
        return None
    except Exception as exc:
        return type(exc).__name__
    finally:
        with suppress(Exception):
            conn.release()


class BrokerWatch:
    """The broker's state as this process last saw it, from publishes and probes.

    A change is logged once, not once per message, and each return after an outage is
    counted so the sweeper can re-send what the outage may have cost (`after_outages`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = BrokerState.UNKNOWN
        self._since = time.monotonic()
        self._recoveries = 0

    @property
    def state(self) -> BrokerState:
        with self._lock:
            return self._state

    def saw_up(self) -> None:
        with self._lock:
            previous, self._state = self._state, BrokerState.UP
            if previous is BrokerState.UP:
                return
            down_for = time.monotonic() - self._since
            self._since = time.monotonic()
            if previous is BrokerState.DOWN:
                self._recoveries += 1
        if previous is BrokerState.DOWN:
            log.warning("broker reachable again after %.0f s; unsent jobs are being sent", down_for)
        else:
            log.info("broker reachable")

    def saw_down(self, reason: str) -> None:
        with self._lock:
            previous, self._state = self._state, BrokerState.DOWN
            if previous is BrokerState.DOWN:
                return
            self._since = time.monotonic()
        log.error(
            "broker unreachable (%s); instances are still received and kept, and their jobs "
            "are sent when it returns",
            reason,
        )

    @property
    def recoveries(self) -> int:
        """How many times the broker came back after this process saw it down."""
        with self._lock:
            return self._recoveries


def after_outages(watch: BrokerWatch, sweep: Callable[[bool], T]) -> Callable[[], T]:
    """`sweep`, told whether the broker came back since its last successful run (a run that
    fails is told again next time)."""
    handled = 0

    def run() -> T:
        nonlocal handled
        seen = watch.recoveries
        result = sweep(seen > handled)
        handled = seen
        return result

    return run


class CachedProbe:
    """The broker's state for a health endpoint polled every few seconds: at most one
    probe per `ttl_s`."""

    def __init__(self, check: Callable[[], str | None], ttl_s: float = 5.0) -> None:
        self._check = check
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._state = BrokerState.UNKNOWN

    def __call__(self) -> str:
        with self._lock:
            if time.monotonic() - self._at >= self._ttl_s:
                self._state = BrokerState.UP if self._check() is None else BrokerState.DOWN
                self._at = time.monotonic()
            return self._state.value
