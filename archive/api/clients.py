"""Who is calling: the client address the audit trail records, and the limit on failed
authentications per address.

The address is the TCP peer's, unless that peer is one of the configured trusted proxies:
then `X-Forwarded-For` is read from the right, skipping trusted proxies, and the first other
address is the client. Anyone else's header is ignored, so a client on the same machine can
no longer choose the address it is audited under (uvicorn's own proxy handling, which trusts
127.0.0.1 by default, is turned off where the API is launched).

Failed authentications are counted per client address and wall-clock minute. Past the limit
the address is answered 429 until the minute ends, without the token being looked at. The
trail gets the first failure of a client's minute as its own event, and the rest of that
minute (further failures and 429s) as one event with the counts once the minute is over,
so a flood of bad tokens costs a couple of rows a minute, not one per request.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from archive import audit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_NO_MINUTE = 2**62


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    ip = _ip(address)
    return ip is not None and any(ip in net for net in proxies)


def resolve_client(
    peer: str | None, forwarded_for: str | None, proxies: Sequence[Network]
) -> str | None:
    """The audited client address: the peer, or from a trusted peer the rightmost address
    of `X-Forwarded-For` that is not itself a trusted proxy."""
    if peer is None or not forwarded_for or not proxies or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:
            # Garbage in the chain: what is left of it cannot be believed either.
            return peer
        if not any(ip in net for net in proxies):
            return str(ip)
    return str(_ip(hops[0])) if hops else peer


# Token ids named in one summary at most: enough to say whose tokens were tried, never a
# list that grows with the flood.
MAX_SUMMARY_TOKEN_IDS = 20


@dataclass
class _Minute:
    failures: int = 0
    refused: int = 0
    unrecorded_failures: int = 0
    token_ids: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Summary:
    """The failures of one client in one past minute not yet in the trail."""

    client: str
    minute: int
    failures: int
    refused: int
    token_ids: tuple[str, ...] = ()

    def record(self) -> audit.AuditRecord:
        start = datetime.fromtimestamp(self.minute * 60, UTC).strftime("%Y-%m-%dT%H:%MZ")
        return audit.AuditRecord(
            event_id=audit.EventId.USER_AUTHENTICATION,
            event_type=audit.EventType.LOGIN,
            action=audit.Action.EXECUTE,
            outcome=audit.Outcome.MINOR_FAILURE,
            actor="anonymous",
            client_address=self.client,
            detail={
                "aggregated": True,
                "minute": start,
                "failed_authentications": self.failures,
                "refused_429": self.refused,
                "token_ids": list(self.token_ids),
            },
        )


class AuthFailureLimiter:
    """Counts failed authentications per client address and minute (see the module doc)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.time) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self._clock = clock
        self._minutes: dict[tuple[str, int], _Minute] = {}
        self._oldest = _NO_MINUTE  # the earliest minute held
        self._lock = threading.Lock()

    def _now(self) -> tuple[int, float]:
        now = self._clock()
        return int(now // 60), now

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again; None when it is not held back. A held
        back request is counted into the minute's summary."""
        minute, now = self._now()
        with self._lock:
            counts = self._minutes.get((client, minute))
            if counts is None or counts.failures < self.per_minute:
                return None
            counts.refused += 1
        return max(1, int((minute + 1) * 60 - now + 0.999))

    def failed(self, client: str, token_id: str | None = None) -> bool:
        """Count one failed authentication; True when it is the client's first this minute
        (to be recorded as its own event now), False when the minute's summary carries it
        (with `token_id`, a well-formed id or "malformed", among the first few named)."""
        minute, _ = self._now()
        with self._lock:
            counts = self._minutes.setdefault((client, minute), _Minute())
            self._oldest = min(self._oldest, minute)
            counts.failures += 1
            if counts.failures == 1:
                return True
            counts.unrecorded_failures += 1
            if token_id and len(counts.token_ids) < MAX_SUMMARY_TOKEN_IDS:
                counts.token_ids.add(token_id)
            return False

    def due(self, *, everything: bool = False) -> list[Summary]:
        """The summaries of minutes that are over (all of them with `everything`, at
        shutdown), each handed out once; finished minutes are forgotten."""
        minute, _ = self._now()
        out: list[Summary] = []
        with self._lock:
            if not everything and self._oldest >= minute:
                return out  # the common case, checked on every request: nothing is over
            for key in [k for k in self._minutes if everything or k[1] < minute]:
                counts = self._minutes.pop(key)
                if counts.unrecorded_failures or counts.refused:
                    ids = tuple(sorted(counts.token_ids))
                    out.append(
                        Summary(key[0], key[1], counts.unrecorded_failures, counts.refused, ids)
                    )
            self._oldest = min((k[1] for k in self._minutes), default=_NO_MINUTE)
        return out

    def put_back(self, summary: Summary) -> None:
        """A summary the trail refused: kept for the next attempt."""
        with self._lock:
            counts = self._minutes.setdefault((summary.client, summary.minute), _Minute())
            counts.unrecorded_failures += summary.failures
            counts.refused += summary.refused
            counts.token_ids.update(summary.token_ids)
            self._oldest = min(self._oldest, summary.minute)
