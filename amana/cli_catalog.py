"""`amana catalog …` and `amana audit …`: the auditors' queries on the server.

These commands run on the server with direct access to the catalog; the operator's login
name is the actor recorded in the audit trail for what they read.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer
from sqlalchemy.orm import Session

from amana.cli_common import (
    MAX_DB_INT,
    FormatOpt,
    audited_command,
    catalog_session,
    cli_actor,
    cli_record,
    err,
    print_rows,
    query_record,
)

if TYPE_CHECKING:
    from archive.audit import AuditRecord

catalog_app = typer.Typer(help="Query the pseudonymous catalog.", no_args_is_help=True)
audit_app = typer.Typer(help="Search, verify and export the audit trail.", no_args_is_help=True)

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


# Filters whose values are formatted (dates, statuses) are always recorded; free-text ones
# only when they matched rows, i.e. when they are values the catalog itself holds.
_ALWAYS_RECORDED = ("date_from", "date_to", "status", "received_from", "received_to", "period")


def _catalog_read(command: str, object_id: str, fmt: str) -> AuditRecord:
    """The record of a catalog read: a Data Export when it is a CSV, else a Query (the
    events of the same HTTP routes)."""
    from archive import audit

    export = fmt == "csv"
    detail: dict[str, Any] = {"format": "csv"} if export else {}
    return cli_record(
        audit.EventId.EXPORT if export else audit.EventId.QUERY,
        audit.Action.READ if export else audit.Action.EXECUTE,
        command,
        object_type="catalog",
        object_id=object_id,
        **detail,
    )


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
    source: Annotated[str | None, typer.Option(help="the sending source's AE title")] = None,
    received_from: Annotated[str | None, typer.Option(help="UTC day YYYY-MM-DD")] = None,
    received_to: Annotated[str | None, typer.Option(help="UTC day YYYY-MM-DD, inclusive")] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_DB_INT)] = 100000,
    offset: Annotated[int, typer.Option(min=0, max=MAX_DB_INT)] = 0,
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

    with audited_command(_catalog_read("catalog studies", "studies", fmt)) as work:
        flt = StudyFilter(
            date_from,
            date_to,
            modality,
            region,
            profile_version,
            status,
            source,
            received_from,
            received_to,
        )
        rows = search_studies(work.session, flt, limit=limit, offset=offset)
        matched = count_studies(work.session, flt) > 0
        work.note(
            rows=len(rows),
            filters={
                k: (v if matched or k in _ALWAYS_RECORDED else UNMATCHED)
                for k, v in flt.as_audit_detail().items()
            },
        )
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

    with audited_command(query_record("catalog show", "study", one=True)) as work:
        detail = study_detail(work.session, study_uid)
        # Recorded once it names a study: a mistyped value could be anything.
        work.note(object_id=study_uid)
    typer.echo(json.dumps(detail, indent=2, default=str))


@catalog_app.command("stats")
def catalog_stats(
    fmt: Annotated[str, typer.Option("--format", help="json or csv")] = "json",
) -> None:
    """Studies and instances per region, modality and month; quarantine rates by reason."""
    from archive.catalog.statistics import STATISTICS_COLUMNS, statistics, statistics_rows

    with audited_command(_catalog_read("catalog stats", "statistics", fmt)) as work:
        stats = statistics(work.session)
    if fmt == "csv":
        print_rows(statistics_rows(stats), "csv", STATISTICS_COLUMNS)
    else:
        typer.echo(json.dumps(stats, indent=2, default=str))


@catalog_app.command("report")
def catalog_report(
    fmt: Annotated[str, typer.Option("--format", help="json or csv")] = "json",
    received_from: Annotated[str | None, typer.Option(help="UTC day YYYY-MM-DD")] = None,
    received_to: Annotated[str | None, typer.Option(help="UTC day YYYY-MM-DD, inclusive")] = None,
    source: Annotated[str | None, typer.Option(help="the sending source's AE title")] = None,
    period: Annotated[str, typer.Option(help="day, week (ISO) or month")] = "day",
) -> None:
    """Studies and instances per source, period and profile version; quarantines per
    source, period and reason (the console's Reports page, GET /reports)."""
    from archive.catalog.reports import REPORT_COLUMNS, ReportFilter, report, report_rows
    from archive.catalog.search import UNMATCHED

    with audited_command(_catalog_read("catalog report", "reports", fmt)) as work:
        flt = ReportFilter(received_from, received_to, source, period)  # type: ignore[arg-type]
        result = report(work.session, flt)
        given = {
            "received_from": received_from,
            "received_to": received_to,
            "period": period,
            "source": source if (result["by_source"] or source is None) else UNMATCHED,
        }
        work.note(filters={k: v for k, v in given.items() if v is not None})
    if fmt == "csv":
        print_rows(report_rows(result), "csv", REPORT_COLUMNS)
    else:
        typer.echo(json.dumps(result, indent=2, default=str))


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
        typer.Option(
            min=1, max=MAX_DB_INT, help="only events older than this seq (the next page's start)"
        ),
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
        try:
            _audit_used(session, "verify", ok=report.ok, checked=report.checked)
        except Exception as exc:
            # The report matters most when the trail is damaged: a head row that is gone
            # refuses this record, and the report is still printed (and says so).
            session.rollback()
            report.notes.append(f"this verification could not be recorded ({type(exc).__name__})")
    for problem in report.problems:
        typer.echo(f"FAIL {problem} [{problem.kind.value}]")
    for note in report.notes:
        typer.echo(f"note: {note}")
    anchor_text = (
        f"anchor seq {report.anchor_seq}" if report.anchor_seq is not None else "no anchor"
    )
    summary = (
        f"{report.checked} events, head seq {report.head_seq} hash {report.head_hash}, "
        f"{anchor_text}, {report.jobs} jobs"
    )
    if report.ok:
        typer.echo(f"audit trail intact: {summary}")
        return
    typer.echo(
        f"audit trail {report.status.value.upper()}: {len(report.problems)} problem(s); {summary}"
    )
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
        # Closed by the head it was pinned to: a copy kept elsewhere anchors the trail.
        export = audit.iter_export(session, flt, fmt, host, head=audit.head_at(session, head))
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
