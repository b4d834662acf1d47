"""`amana catalog …`, `amana audit …`, `amana token …`, `amana sources …`.

These commands run on the server with direct access to the catalog; the operator's login
name is the actor recorded in the audit trail for what they read or change.
"""

from __future__ import annotations

import getpass
import json
import socket
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from amana.errors import RejectError
from amana.settings import Settings

catalog_app = typer.Typer(help="Query the pseudonymous catalog.", no_args_is_help=True)
audit_app = typer.Typer(help="Search, verify and export the audit trail.", no_args_is_help=True)
token_app = typer.Typer(help="API bearer tokens (admin).", no_args_is_help=True)
sources_app = typer.Typer(help="PACS allowed to send (AE title + address).", no_args_is_help=True)

console = Console()
err = Console(stderr=True)
FormatOpt = Annotated[str, typer.Option("--format", help="table, json or csv")]

# The short list of `archive.catalog.search.search_studies` keys, which scripts and tests read.
STUDY_LIST_KEYS = [
    "study_uid",
    "patient_pseudonym",
    "study_date",
    "description",
    "region",
    "modalities",
    "series",
    "instances",
    "status",
    "profile",
    "profile_version",
]


def cli_actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "unknown"
    return f"cli:{user}"[:64]


@contextmanager
def catalog_session() -> Iterator[Session]:
    from archive.catalog.db import make_engine, make_sessionmaker

    settings = Settings()
    engine = make_engine(settings.db_url)
    try:
        with make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


def fail(exc: Exception) -> typer.Exit:
    err.print(f"error: {exc}")
    return typer.Exit(1)


def print_rows(rows: list[dict[str, Any]], fmt: str, columns: list[str]) -> None:
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    if fmt == "csv":
        from archive.catalog.search import to_csv

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


def _audit_read(session: Session, object_id: str, **detail: Any) -> None:
    from archive import audit

    audit.append(
        session,
        audit.AuditRecord(
            event_id=audit.EventId.QUERY,
            action=audit.Action.EXECUTE,
            actor=cli_actor(),
            object_type="catalog",
            object_id=object_id,
            detail={"via": "cli", **detail},
        ),
    )
    session.commit()


# --- catalog --------------------------------------------------------------------------------


@catalog_app.command("studies")
def catalog_studies(
    fmt: FormatOpt = "table",
    date_from: Annotated[str | None, typer.Option(help="shifted study date YYYYMMDD")] = None,
    date_to: Annotated[str | None, typer.Option(help="YYYYMMDD, inclusive")] = None,
    modality: Annotated[str | None, typer.Option()] = None,
    region: Annotated[str | None, typer.Option()] = None,
    profile_version: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option(help="RECEIVING or COMPLETE")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100000,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    full: Annotated[bool, typer.Option(help="every catalog column, not the short list")] = False,
) -> None:
    """One entry per study: pseudonymous UID, modalities, series and instance counts."""
    from archive.catalog.search import (
        STUDY_COLUMNS,
        UNMATCHED,
        StudyFilter,
        count_studies,
        search_studies,
    )

    try:
        flt = StudyFilter(date_from, date_to, modality, region, profile_version, status)
        with catalog_session() as session:
            rows = search_studies(session, flt, limit=limit, offset=offset)
            matched = count_studies(session, flt) > 0
            _audit_read(
                session,
                "studies",
                rows=len(rows),
                filters={
                    k: (v if matched or k in ("date_from", "date_to", "status") else UNMATCHED)
                    for k, v in flt.as_audit_detail().items()
                },
            )
    except RejectError as exc:
        raise fail(exc) from exc
    if not full:
        rows = [{k: row[k] for k in STUDY_LIST_KEYS} for row in rows]
    columns = STUDY_COLUMNS if full else STUDY_LIST_KEYS
    if fmt == "table":
        columns = ["study_uid", "study_date", "modalities", "series", "instances", "status"]
    print_rows(rows, fmt, columns)


@catalog_app.command("show")
def catalog_show(
    study_uid: Annotated[str, typer.Argument(help="the new Study Instance UID")],
) -> None:
    """One study with series, instances, jobs and audit history (JSON)."""
    from archive.catalog.search import study_detail

    try:
        with catalog_session() as session:
            detail = study_detail(session, study_uid)
            _audit_read(session, study_uid)
    except RejectError as exc:
        raise fail(exc) from exc
    typer.echo(json.dumps(detail, indent=2, default=str))


@catalog_app.command("stats")
def catalog_stats(
    fmt: Annotated[str, typer.Option("--format", help="json or csv")] = "json",
) -> None:
    """Studies and instances per region, modality and month; quarantine rates by reason."""
    from archive.catalog.search import STATISTICS_COLUMNS, statistics, statistics_rows

    with catalog_session() as session:
        stats = statistics(session)
        _audit_read(session, "statistics")
    if fmt == "csv":
        print_rows(statistics_rows(stats), "csv", STATISTICS_COLUMNS)
    else:
        typer.echo(json.dumps(stats, indent=2, default=str))


# --- audit ----------------------------------------------------------------------------------


def _audit_used(session: Session, what: str, **detail: Any) -> None:
    from archive import audit

    audit.append(
        session,
        audit.AuditRecord(
            event_id=audit.EventId.AUDIT_LOG_USED,
            action=audit.Action.READ,
            actor=cli_actor(),
            object_type="audit_log",
            object_id=what,
            detail={"via": "cli", **detail},
        ),
    )
    session.commit()


@audit_app.command("search")
def audit_search(
    fmt: FormatOpt = "table",
    event: Annotated[str | None, typer.Option(help="code (110112) or name (Query)")] = None,
    actor: Annotated[str | None, typer.Option(help="token id, ae:TITLE, cli:USER, worker")] = None,
    object_id: Annotated[str | None, typer.Option("--object", help="UID, job id, version")] = None,
    since: Annotated[str | None, typer.Option(help="ISO date or time, inclusive")] = None,
    until: Annotated[str | None, typer.Option(help="ISO date or time, exclusive")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 1000,
    before: Annotated[
        int | None,
        typer.Option(min=1, help="only events older than this seq (the next page's start)"),
    ] = None,
) -> None:
    """Audit events, newest first, one page at a time (the next page's --before on stderr)."""
    from archive import audit

    flt = audit.AuditFilter(event, actor, object_id, None, since, until)
    with catalog_session() as session:
        page = audit.search_page(session, flt, before_seq=before, limit=limit)
        _audit_used(session, "search", rows=len(page.items), before=before)
    columns = audit.AUDIT_COLUMNS
    if fmt == "table":
        columns = ["seq", "occurred_at", "event", "action", "outcome", "actor", "object_id"]
    print_rows(page.items, fmt, columns)
    if page.next_before_seq is not None:
        # On stderr so that json and csv output on stdout stays one document.
        err.print(f"older events: --before {page.next_before_seq}")


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[
        str | None,
        typer.Option(help="SEQ:HASH noted earlier (e.g. from a syslog export) to check against"),
    ] = None,
) -> None:
    """Check the hash chain; exit status 1 and the offending rows if anything was altered."""
    from archive import audit

    anchor_pair: tuple[int, str] | None = None
    if anchor:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise typer.BadParameter("--anchor must be SEQ:HASH (64 hex digits)")
        anchor_pair = (int(seq), digest.lower())
    with catalog_session() as session:
        report = audit.verify(session, anchor=anchor_pair)
        session.rollback()
        _audit_used(session, "verify", ok=report.ok, checked=report.checked)
    if report.ok:
        typer.echo(
            f"audit trail intact: {report.checked} events, head seq {report.head_seq} "
            f"hash {report.head_hash}"
        )
        return
    for problem in report.problems:
        typer.echo(f"FAIL {problem}")
    typer.echo(f"audit trail BROKEN: {len(report.problems)} problem(s) in {report.checked} events")
    raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    syslog: Annotated[bool, typer.Option("--syslog", help="RFC 5424 lines (default)")] = True,
    csv_: Annotated[bool, typer.Option("--csv", help="CSV instead of syslog")] = False,
    out: Annotated[Path | None, typer.Option(help="file to write (default: stdout)")] = None,
    since: Annotated[str | None, typer.Option(help="ISO date or time, inclusive")] = None,
    until: Annotated[str | None, typer.Option(help="ISO date or time, exclusive")] = None,
    hostname: Annotated[str | None, typer.Option(help="HOSTNAME field")] = None,
) -> None:
    """Export events, for a SIEM or a syslog collector (RFC 5424, DICOM AuditMessage body).

    Written as it is read, a page of events at a time, so any size of trail fits in memory.
    """
    from archive import audit

    fmt: audit.ExportFormat = "csv" if csv_ else "syslog"
    host = hostname or socket.gethostname()
    with catalog_session() as session:
        # Pinned to the current head: the export is the trail as it stood when it began, and
        # its own record, committed before any event leaves, says exactly what it holds.
        head = audit.latest_seq(session)
        flt = audit.AuditFilter(since=since, until=until, to_seq=head)
        _audit_used(session, "export", rows=audit.count(session, flt), to_seq=head, format=fmt)
        export = audit.iter_export(session, flt, fmt, host)
        if out is None:
            _write_all(export, sys.stdout)
        else:
            with out.open("w", encoding="utf-8", newline="") as sink:
                _write_all(export, sink)
    if out is not None:
        err.print(f"{export.rows} events written to {out}")


def _write_all(chunks: Iterable[str], sink: TextIO) -> None:
    for chunk in chunks:
        sink.write(chunk)


# --- tokens ---------------------------------------------------------------------------------


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="auditor, steward or admin")],
    label: Annotated[str | None, typer.Option(help="who or what the token is for")] = None,
) -> None:
    """Mint a token and print it (shown once; only its hash is stored)."""
    from archive import audit
    from archive.governance.auth import create_token, parse_role

    try:
        parsed = parse_role(role)
    except RejectError as exc:
        raise fail(exc) from exc
    with catalog_session() as session:
        token_id, token = create_token(session, role=parsed, created_by=cli_actor(), label=label)
        audit.append(
            session,
            audit.AuditRecord(
                event_id=audit.EventId.SECURITY_ALERT,
                event_type=audit.EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
                action=audit.Action.CREATE,
                actor=cli_actor(),
                object_type="token",
                object_id=token_id,
                detail={"via": "cli", "role": parsed.value},
            ),
        )
        session.commit()
    typer.echo(token)


@token_app.command("list")
def token_list(fmt: FormatOpt = "table") -> None:
    """Token ids, roles and labels (never the secrets)."""
    from archive.governance.auth import list_tokens

    with catalog_session() as session:
        rows = list_tokens(session)
    print_rows(rows, fmt, ["token_id", "role", "label", "created_by", "created_at", "revoked"])


@token_app.command("revoke")
def token_revoke(token_id: str) -> None:
    """Revoke a token at once."""
    from archive import audit
    from archive.governance.auth import revoke_token

    try:
        with catalog_session() as session:
            revoke_token(session, token_id)
            audit.append(
                session,
                audit.AuditRecord(
                    event_id=audit.EventId.SECURITY_ALERT,
                    event_type=audit.EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
                    action=audit.Action.DELETE,
                    actor=cli_actor(),
                    object_type="token",
                    object_id=token_id,
                    detail={"via": "cli"},
                ),
            )
            session.commit()
    except RejectError as exc:
        raise fail(exc) from exc
    typer.echo(f"revoked {token_id}")


# --- sources --------------------------------------------------------------------------------


def _source_event(action: str, ae_title: str, **detail: Any) -> Any:
    from archive import audit

    return audit.AuditRecord(
        event_id=audit.EventId.SECURITY_ALERT,
        event_type=audit.EventType.NETWORK_CONFIGURATION,
        action=audit.Action(action),
        actor=cli_actor(),
        object_type="node",
        object_id=ae_title,
        detail={"via": "cli", **detail},
    )


@sources_app.command("add")
def sources_add(
    ae_title: Annotated[str, typer.Argument(help="the PACS's calling AE title")],
    address: Annotated[str, typer.Argument(help="IP address or network, e.g. 10.1.2.0/24")],
    profile: Annotated[str | None, typer.Option(help="profile for this source")] = None,
    site: Annotated[str | None, typer.Option(help="hospital or site label")] = None,
    region: Annotated[str | None, typer.Option(help="region recorded for its studies")] = None,
) -> None:
    """Allow a PACS to send."""
    from archive import audit
    from archive.governance.sources import add_source

    try:
        with catalog_session() as session:
            src = add_source(
                session,
                ae_title=ae_title,
                address=address,
                profile_name=profile,
                site=site,
                region=region,
            )
            audit.append(session, _source_event("C", src.ae_title, address=src.address))
            session.commit()
    except RejectError as exc:
        raise fail(exc) from exc
    typer.echo(f"source {src.ae_title} from {src.address} registered")


@sources_app.command("list")
def sources_list(fmt: FormatOpt = "table") -> None:
    """Registered sources."""
    from archive.governance.sources import list_sources

    with catalog_session() as session:
        rows = list_sources(session)
    print_rows(rows, fmt, ["ae_title", "address", "profile", "site", "region", "enabled"])


@sources_app.command("remove")
def sources_remove(ae_title: str) -> None:
    """Stop accepting a PACS."""
    from archive import audit
    from archive.governance.sources import remove_source

    try:
        with catalog_session() as session:
            remove_source(session, ae_title)
            audit.append(session, _source_event("D", ae_title))
            session.commit()
    except RejectError as exc:
        raise fail(exc) from exc
    typer.echo(f"source {ae_title} removed")
