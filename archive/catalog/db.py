"""Engine and session factory for the catalog, PostgreSQL or embedded SQLite."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        # The receiver answers from several threads and workers write from several processes:
        # WAL lets readers proceed during a write and busy_timeout queues writers instead of
        # failing them.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "savepoint", _sqlite_savepoint_inside_transaction)
    return engine


def _sqlite_savepoint_inside_transaction(conn: Connection, _name: str) -> None:
    # pysqlite opens a transaction only before INSERT/UPDATE/DELETE, and SQLite takes a
    # SAVEPOINT outside a transaction as the transaction itself: its RELEASE would commit
    # what it wraps (a new source, an approval) before the audit event of the same unit of
    # work is written, and a failed append could no longer take it back.
    dbapi_conn = conn.connection.dbapi_connection
    if dbapi_conn is not None and not dbapi_conn.in_transaction:
        dbapi_conn.execute("BEGIN")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)
