"""The embedded durable queue: kombu's SQLAlchemy transport on a SQLite file, made to poll
often, and cheaply.

Kombu's virtual transports poll; the SQLAlchemy one passes every transport option to
create_engine, so its polling interval cannot be set and stays at one second, which with
prefetch 1 caps a worker at about one job per process per second. This subclass keeps the
interval for the poller and the rest for the engine.

Kombu's consume marks a message invisible and never deletes it, and its poll (the oldest
visible message, in send order) scans every message ever consumed: 0.7 ms of CPU per poll
after 10,000 messages, 8.5 ms after 100,000, twenty times a second, under the queue's write
lock. Here a consumed message is deleted in the transaction that takes it (kombu never
reads an invisible message again: an unacknowledged one is put back as a new message), so
a poll reads the waiting messages only. And a poll that found the queue empty is not
repeated while SQLite's data_version says nobody has committed to the file since: most
polls of an idle or busy worker then cost one PRAGMA instead of two ORM queries and a
write transaction.
"""

from __future__ import annotations

import time
from queue import Empty as _Empty
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Channel as _SqlaChannel
from kombu.transport.sqlalchemy import Transport as _SqlaTransport
from kombu.utils.json import loads
from sqlalchemy import create_engine, delete, event, select, text
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


# A poll skipped because nothing changed is still made for real at least this often, so
# that a missed change (none is known to be possible) costs at most this much delay.
RECHECK_S = 1.0


class Channel(_SqlaChannel):  # type: ignore[misc]
    # Per channel: queue ids by name, the data_version connection, and, per queue, the
    # data_version under which its last poll found it empty (with that poll's time).
    _queue_ids: dict[str, int] | None = None
    _version_conn: Any = None
    _empty_since: dict[str, tuple[int, float]] | None = None
    _swept = False

    def _get_or_create(self, queue: str) -> Any:
        # Several receiver processes start together and may all create the queue's row;
        # kombu only expects OperationalError there, and an IntegrityError left its session
        # unusable, so every later publish of that process failed.
        try:
            return super()._get_or_create(queue)
        except IntegrityError:
            self.session.rollback()
            return self.session.query(self.queue_cls).filter(self.queue_cls.name == queue).one()

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        if self._empty_since is None:
            self._empty_since = {}
        version = self._data_version()
        seen = self._empty_since.get(queue)
        if (
            version is not None
            and seen is not None
            and seen[0] == version
            and time.monotonic() - seen[1] < RECHECK_S
        ):
            raise _Empty()
        payload = self._take(queue)
        if payload is None:
            if version is not None:
                self._empty_since[queue] = (version, time.monotonic())
            raise _Empty()
        self._empty_since.pop(queue, None)
        return loads(payload)

    def _data_version(self) -> int | None:
        """Changes whenever another connection commits to the file (SQLite only)."""
        if self.session.bind.dialect.name != "sqlite":
            return None
        if self._version_conn is None:
            self._version_conn = self.session.bind.raw_connection()
        cursor = self._version_conn.cursor()
        try:
            cursor.execute("PRAGMA data_version")
            return int(cursor.fetchone()[0])
        finally:
            cursor.close()

    def _take(self, queue: str) -> str | None:
        """The oldest waiting message of `queue`, deleted in the same transaction."""
        table = self.message_cls.__table__
        queue_id = self._queue_id(queue)
        session = self.session
        if session.bind.dialect.name == "sqlite":
            session.execute(text("BEGIN IMMEDIATE TRANSACTION"))
        try:
            if not self._swept:
                # Messages consumed by kombu's own _get (before this class deleted them).
                session.execute(delete(table).where(table.c.visible.is_(False)))
                self._swept = True
            row = session.execute(
                select(table.c.id, table.c.payload)
                .where(table.c.queue_id == queue_id)
                .where(table.c.visible.is_not(False))
                .order_by(table.c.timestamp, table.c.id)
                .limit(1)
                .with_for_update()
            ).first()
            if row is None:
                return None
            session.execute(delete(table).where(table.c.id == row[0]))
            return str(row[1])
        finally:
            session.commit()

    def _queue_id(self, queue: str) -> int:
        if self._queue_ids is None:
            self._queue_ids = {}
        if queue not in self._queue_ids:
            self._queue_ids[queue] = int(self._get_or_create(queue).id)
        return self._queue_ids[queue]

    def close(self) -> None:
        conn, self._version_conn = self._version_conn, None
        if conn is not None:
            conn.close()
        super().close()

    def _engine_from_config(self) -> Any:
        conninfo = self.connection.client
        options = {k: v for k, v in conninfo.transport_options.items() if k not in _POLLER_OPTIONS}
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
