"""What every catalog-side command shares: the operator as audit actor, the catalog session,
the audited unit of work, and one way to print rows and refusals.

These commands run on the server with direct access to the catalog; the operator's login
name is the actor recorded in the audit trail for what they read or change.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from amana.errors import AmanaError
from amana.sessions import anchored

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from archive.audit import Action, AuditRecord, EventId, EventType
    from archive.audit.unit import Work
    from archive.work.publish import JobSink

console = Console()
err = Console(stderr=True)
FormatOpt = Annotated[str, typer.Option("--format", help="table, json or csv")]
# Ids, offsets and sequence numbers stop where the database's integers do (BIGINT, SQLite's
# INTEGER): a larger number is refused as a bad argument instead of failing in the driver.
MAX_DB_INT = 2**63 - 1
RowIdArg = Annotated[int, typer.Argument(min=1, max=MAX_DB_INT)]


def cli_actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "unknown"
    return f"cli:{user}"[:64]


@contextmanager
def catalog_session(job_sink: JobSink | None = None) -> Iterator[Session]:
    """A session on the configured catalog; with `job_sink`, job ids the command enqueues
    reach it once their transaction commits."""
    from amana.startup import load
    from archive.catalog.db import make_engine, make_sessionmaker
    from archive.work.publish import attach_job_sink

    settings = load()  # a bad AMANA_* value: one line naming it, no traceback
    engine = make_engine(settings.db_url)
    try:
        sessions = anchored(make_sessionmaker(engine), settings)
        if job_sink is not None:
            attach_job_sink(sessions, job_sink)
        with sessions() as session:
            yield session
    finally:
        engine.dispose()


def cli_record(
    event_id: EventId,
    action: Action,
    command: str,
    *,
    event_type: EventType | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    **detail: Any,
) -> AuditRecord:
    """The record of one command: the same event, type, action and object as the HTTP route
    that does the same thing, with the operator as actor and the command in place of the
    route."""
    from archive.audit import AuditRecord

    return AuditRecord(
        event_id=event_id,
        event_type=event_type,
        action=action,
        actor=cli_actor(),
        object_type=object_type,
        object_id=object_id,
        detail={"via": "cli", "command": command, **detail},
    )


def query_record(
    command: str, object_type: str, *, object_id: str | None = None, one: bool = False
) -> AuditRecord:
    """A Query: Execute for a list or a search, Read for one object, as over HTTP."""
    from archive import audit

    action = audit.Action.READ if one else audit.Action.EXECUTE
    return cli_record(
        audit.EventId.QUERY, action, command, object_type=object_type, object_id=object_id
    )


@contextmanager
def audited_command(record: AuditRecord, *, job_sink: JobSink | None = None) -> Iterator[Work]:
    """The command's reads or changes and their audit event as one transaction. A refusal is
    recorded (by `audited`) and ends the command with status 1, as does an audit trail that
    cannot be written: nothing is read or changed without its record."""
    from archive.audit.unit import audited

    try:
        with catalog_session(job_sink) as session, audited(session, record) as work:
            yield work
    except AmanaError as exc:
        raise fail(exc) from exc


def print_listing(
    command: str,
    object_type: str,
    rows_of: Callable[[Session], list[dict[str, Any]]],
    fmt: str,
    columns: list[str],
) -> None:
    """A whole table read under its Query event, printed only once the event is written."""
    with audited_command(query_record(command, object_type)) as work:
        rows = rows_of(work.session)
        work.note(rows=len(rows))
    print_rows(rows, fmt, columns)


def fail(exc: Exception) -> typer.Exit:
    err.print(f"error: {exc}")
    return typer.Exit(1)


def print_rows(rows: list[dict[str, Any]], fmt: str, columns: list[str]) -> None:
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    if fmt == "csv":
        from archive.catalog.csv_rows import to_csv

        sys.stdout.write(to_csv(rows, columns))
        return
    if fmt != "table":
        raise typer.BadParameter("--format must be table, json or csv")
    table = Table(*columns)
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in columns])
    console.print(table)


def _cell(value: object) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)
