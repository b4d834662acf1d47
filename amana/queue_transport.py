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
from sqlalchemy import create_engine, event
from sqlalchemy.exc import IntegrityError

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
    def _get_or_create(self, queue: str) -> Any:
        # Several receiver processes start together and may all create the queue's row;
        # kombu only expects OperationalError there, and an IntegrityError left its session
        # unusable, so every later publish of that process failed.
        try:
            return super()._get_or_create(queue)
        except IntegrityError:
            self.session.rollback()
            return self.session.query(self.queue_cls).filter(self.queue_cls.name == queue).one()

    def _engine_from_config(self) -> Any:
        conninfo = self.connection.client
        options = {
            k: v for k, v in conninfo.transport_options.items() if k not in _POLLER_OPTIONS
        }
        engine = create_engine(conninfo.hostname, **options)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _queue_pragmas)
        return engine


def _queue_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the receivers publish while workers poll. A message lost to a power cut only
    # costs delay: the catalog holds the job and the sweeper re-sends it, so the queue does
    # not need an fsync per message.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


class Transport(_SqlaTransport):  # type: ignore[misc]
    Channel = Channel


def register() -> None:
    TRANSPORT_ALIASES[ALIAS] = f"{__name__}:Transport"
