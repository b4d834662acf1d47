"""The embedded durable queue: kombu's SQLAlchemy transport on a SQLite file, made to poll
often.

Kombu's virtual transports poll; the SQLAlchemy one passes every transport option to
create_engine, so its polling interval cannot be set and stays at one second, which with
prefetch 1 caps a worker at about one job per process per second. This subclass keeps the
interval for the poller and the rest for the engine.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Channel as _SqlaChannel
from kombu.transport.sqlalchemy import Transport as _SqlaTransport
from sqlalchemy import create_engine

ALIAS = "amana-sqla"
_POLLER_OPTIONS = (
    "queue_tablename",
    "message_tablename",
    "callback",
    "errback",
    "max_retries",
    "interval_start",
    "interval_step",
    "interval_max",
    "retry_errors",
    "polling_interval",
)


class Channel(_SqlaChannel):  # type: ignore[misc]
    def _engine_from_config(self) -> Any:
        conninfo = self.connection.client
        options = {
            k: v for k, v in conninfo.transport_options.items() if k not in _POLLER_OPTIONS
        }
        return create_engine(conninfo.hostname, **options)


class Transport(_SqlaTransport):  # type: ignore[misc]
    Channel = Channel


def register() -> None:
    TRANSPORT_ALIASES[ALIAS] = f"{__name__}:Transport"
