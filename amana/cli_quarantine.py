"""`amana quarantine …`: instances held back, read and handled by stewards."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from amana.cli_common import (
    FormatOpt,
    RowIdArg,
    audited_command,
    cli_actor,
    console,
    print_rows,
    query_record,
)
from amana.startup import load as load_settings

if TYPE_CHECKING:
    from archive.audit import AuditRecord

quarantine_app = typer.Typer(help="Instances held back, with their reasons.", no_args_is_help=True)

# The whole list: the command line has no pages, and the catalog holds no PHI to page past.
_LIST_LIMIT = 100_000


@quarantine_app.command("list")
def quarantine_list(fmt: FormatOpt = "table") -> None:
    """One entry per quarantined instance, with its reason code and message."""
    from archive.catalog.search import QuarantineFilter, search_quarantine

    record = query_record("quarantine list", "quarantine", object_id="quarantine")
    with audited_command(record) as work:
        total, rows = search_quarantine(work.session, QuarantineFilter(), limit=_LIST_LIMIT)
        work.note(total=total)
    print_rows(rows, fmt, ["id", "job_id", "reason", "message", "status", "received_at"])


@quarantine_app.command("show")
def quarantine_show(entry_id: RowIdArg, fmt: FormatOpt = "table") -> None:
    """One quarantined instance: reason, message, origin and history (no PHI)."""
    from archive.work.quarantine import entry_detail

    record = query_record("quarantine show", "quarantine", object_id=str(entry_id), one=True)
    with audited_command(record) as work:
        detail = entry_detail(work.session, entry_id)
    print_rows([detail], fmt, list(detail))


def _record(step: str, entry_id: int) -> AuditRecord:
    """The same record as the HTTP route's (`quarantine_action`), with the operator as actor."""
    from archive import audit

    action = audit.quarantine_action(cli_actor(), entry_id, step)
    return dataclasses.replace(
        action, detail={**action.detail, "via": "cli", "command": f"quarantine {step}"}
    )


@quarantine_app.command("retry")
def quarantine_retry(entry_id: RowIdArg) -> None:
    """Send a held original through the pipeline again (after fixing a profile, say)."""
    from amana.celery_app import make_celery, node_queue
    from amana.publisher import Publisher
    from archive.work import quarantine as quarantine_ops
    from archive.work.publish import enqueue_after_commit

    settings = load_settings()
    publisher = Publisher(make_celery(settings), queue=node_queue(settings.node), linger_s=0)
    try:
        with audited_command(_record("retry", entry_id), job_sink=publisher.submit) as work:
            job_id = quarantine_ops.retry(
                work.session,
                entry_id,
                quarantine_dir=settings.quarantine_path,
                spool_dir=settings.spool_path,
                node=settings.node,
            )
            work.note(job_id=job_id)
            enqueue_after_commit(work.session, [job_id])
    finally:
        publisher.close()
    if publisher.unsent:
        console.print("queue unavailable: the sweeper will send the job")
    console.print(f"entry {entry_id}: job {job_id} queued again")


@quarantine_app.command("release")
def quarantine_release(
    entry_id: RowIdArg,
    to: Annotated[Path, typer.Option("--to", help="folder that receives the original")],
) -> None:
    """Hand a held original out of Amana (back to its hospital, or for manual review)."""
    from archive.work import quarantine as quarantine_ops

    settings = load_settings()
    with audited_command(_record("release", entry_id)) as work:
        out = quarantine_ops.release(
            work.session, entry_id, quarantine_dir=settings.quarantine_path, dest_dir=to
        )
    console.print(f"entry {entry_id}: original released to {out}")


@quarantine_app.command("purge")
def quarantine_purge(
    entry_id: RowIdArg,
    yes: Annotated[bool, typer.Option("--yes", help="confirm the deletion")] = False,
) -> None:
    """Delete a held original for good; the catalog keeps the entry and its reason."""
    from archive.work import quarantine as quarantine_ops

    if not yes:
        raise typer.BadParameter("purging deletes the original: confirm with --yes")
    settings = load_settings()
    with audited_command(_record("purge", entry_id)) as work:
        quarantine_ops.purge(work.session, entry_id, quarantine_dir=settings.quarantine_path)
    console.print(f"entry {entry_id}: original purged")
