"""The `amana` command."""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from amana import cli_governance
from amana.cli_anonymize import anonymize
from amana.cli_catalog import audit_app, catalog_app, sources_app, token_app
from amana.cli_profile import profile_app
from amana.logsetup import configure_logging
from amana.settings import Settings

app = typer.Typer(
    help="Amana: DICOM de-identification into a national archive.", no_args_is_help=True
)
quarantine_app = typer.Typer(help="Instances held back, with their reasons.", no_args_is_help=True)
db_app = typer.Typer(help="Catalog schema.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(audit_app, name="audit")
app.add_typer(token_app, name="token")
app.add_typer(sources_app, name="sources")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(db_app, name="db")
app.add_typer(profile_app, name="profile")
for _command in (
    cli_governance.propose,
    cli_governance.approve,
    cli_governance.activate,
    cli_governance.versions,
):
    profile_app.command(_command.__name__)(_command)
app.command("anonymize")(anonymize)

console = Console()
FormatOpt = Annotated[str, typer.Option("--format", help="table or json")]


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level)
    return settings


def _prepare_dirs(settings: Settings) -> None:
    for path in (settings.home, settings.spool_path, settings.archive_path):
        path.mkdir(parents=True, exist_ok=True)
    settings.quarantine_path.mkdir(parents=True, exist_ok=True, mode=0o700)


def _wait_for_schema(settings: Settings, timeout_s: float = 120.0) -> None:
    """Split deployments run migrations once, in their own job; components wait for it."""
    from archive.catalog.db import make_engine
    from archive.catalog.migrate import is_at_head

    engine = make_engine(settings.db_url)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                if is_at_head(engine):
                    return
            except Exception as exc:  # database not up yet
                last = type(exc).__name__
            else:
                last = "schema not at the latest migration"
            if time.monotonic() > deadline:
                raise typer.BadParameter(f"catalog not ready ({last}); run `amana db upgrade`")
            time.sleep(2)
    finally:
        engine.dispose()


@app.command()
def run() -> None:
    """Everything on one machine: receiver, worker, sweeper and API (embedded defaults)."""
    from amana.keys import ensure_key
    from amana.supervisor import supervise
    from archive.catalog.migrate import upgrade

    settings = _settings()
    _prepare_dirs(settings)
    ensure_key(settings.key_path)
    upgrade(settings.db_url)
    console.print(
        f"Amana: DICOM {settings.ae_title}@{settings.dicom_host}:{settings.dicom_port}, "
        f"API http://{settings.api_host}:{settings.api_port}/docs, home {settings.home}"
    )
    raise typer.Exit(supervise(settings))


@app.command()
def receive(
    no_sweeper: Annotated[bool, typer.Option(help="do not run the sweeper here")] = False,
    sibling: Annotated[
        bool, typer.Option(hidden=True, help="started by the receiver that owns the port")
    ] = False,
) -> None:
    """The DICOM receiver (C-ECHO, C-STORE) with the sweeper; AMANA_RECEIVER_PROCESSES
    processes share the port."""
    from amana.receiver import run_receiver

    settings = _settings()
    _prepare_dirs(settings)
    _wait_for_schema(settings)
    try:
        run_receiver(settings, sweeper=not no_sweeper, sibling=sibling)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        console.print(
            f"[red]DICOM port {settings.dicom_host}:{settings.dicom_port} is already in use"
            " (another receiver?)[/red]"
        )
        raise typer.Exit(2) from exc


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="worker processes")] = None,
) -> None:
    """A Celery worker that de-identifies and archives queued jobs."""
    from amana.worker import run_worker

    settings = _settings()
    _prepare_dirs(settings)
    _wait_for_schema(settings)
    run_worker(settings, concurrency=concurrency)


@app.command()
def api() -> None:
    """The HTTP API (OpenAPI at /docs)."""
    import socket

    import uvicorn

    from amana.celery_app import make_celery
    from amana.publisher import publish_now
    from archive import audit
    from archive.api import create_app
    from archive.catalog.db import make_engine, make_sessionmaker

    settings = _settings()
    _wait_for_schema(settings)
    sessions = make_sessionmaker(make_engine(settings.db_url))
    celery = make_celery(settings)
    web = create_app(
        sessions,
        profiles_dir=settings.profiles_dir,
        hostname=socket.gethostname(),
        quarantine_dir=settings.quarantine_path,
        spool_dir=settings.spool_path,
        publish=lambda job_ids: publish_now(celery, job_ids),
    )
    audit.record(sessions, audit.application_activity("api", started=True))
    try:
        uvicorn.run(web, host=settings.api_host, port=settings.api_port, log_level="warning")
    finally:
        audit.record(sessions, audit.application_activity("api", started=False))


@app.command("import")
def import_(
    folder: Annotated[Path, typer.Argument(exists=True, help="a backlog folder or file")],
) -> None:
    """Queue a backlog folder through the same spool, jobs and workers as network transfers."""
    from amana.celery_app import make_celery
    from amana.publisher import Publisher
    from archive.catalog.db import make_engine, make_sessionmaker
    from ingest.folder import ImportLedger, import_folder, iter_files
    from ingest.spool import Spool

    settings = _settings()
    _prepare_dirs(settings)
    _wait_for_schema(settings, timeout_s=10)
    spool = Spool(
        settings.spool_path,
        settings.spool_min_free_mb * 1024 * 1024,
        settings.max_instance_mb * 1024 * 1024,
    )
    sessions = make_sessionmaker(make_engine(settings.db_url))
    publisher = Publisher(make_celery(settings))
    total = sum(1 for _ in iter_files(folder))
    with Progress(console=console) as progress:
        task = progress.add_task("importing", total=total)
        report = import_folder(
            folder,
            spool=spool,
            sessions=sessions,
            publish=lambda job_id: publisher.submit([job_id]),
            ledger=ImportLedger(settings.home / "imports" / "ledger.txt"),
            progress=lambda n: progress.update(task, completed=n + 1),
        )
    console.print(
        f"queued {report.queued} of {total} files"
        f" ({report.already_imported} already imported earlier)"
    )
    for path, reason in report.skipped:
        console.print(f"  skipped {path}: {reason}")
    publisher.close(timeout=60)
    if publisher.unsent:
        console.print(f"{publisher.unsent} jobs could not be sent now; the sweeper will send them")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the catalog migrations (the compose `migrate` job runs this)."""
    from archive.catalog.migrate import upgrade

    settings = _settings()
    _prepare_dirs(settings)
    upgrade(settings.db_url)
    console.print("catalog schema is up to date")


def _print(rows: list[dict[str, Any]], fmt: str, columns: list[str]) -> None:
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    if fmt != "table":
        raise typer.BadParameter("--format must be table or json")
    table = Table(*columns)
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in columns])
    console.print(table)


def _cell(value: object) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def _session() -> Any:
    from archive.catalog.db import make_engine, make_sessionmaker

    settings = _settings()
    return make_sessionmaker(make_engine(settings.db_url))()


@quarantine_app.command("list")
def quarantine_list(fmt: FormatOpt = "table") -> None:
    """One entry per quarantined instance, with its reason code and message."""
    from archive.catalog.search import QuarantineFilter, search_quarantine

    with _session() as session:
        _total, rows = search_quarantine(session, QuarantineFilter(), limit=100000)
    _print(rows, fmt, ["id", "job_id", "reason", "message", "status", "received_at"])


def _quarantine_action(action: str, entry_id: int, dest: Path | None = None) -> None:
    from amana.celery_app import make_celery
    from amana.cli_catalog import cli_actor
    from amana.errors import RejectError
    from amana.publisher import publish_now
    from archive import audit
    from archive.catalog.db import make_engine, make_sessionmaker
    from archive.work import quarantine as quarantine_ops

    settings = _settings()
    sessions = make_sessionmaker(make_engine(settings.db_url))
    try:
        with sessions.begin() as session:
            if action == "retry":
                job_id = quarantine_ops.retry(
                    session,
                    entry_id,
                    quarantine_dir=settings.quarantine_path,
                    spool_dir=settings.spool_path,
                )
            elif action == "release":
                assert dest is not None
                out = quarantine_ops.release(
                    session, entry_id, quarantine_dir=settings.quarantine_path, dest_dir=dest
                )
            else:
                quarantine_ops.purge(session, entry_id, quarantine_dir=settings.quarantine_path)
            audit.append(session, audit.quarantine_action(cli_actor(), entry_id, action))
    except RejectError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from exc
    if action == "retry":
        try:
            publish_now(make_celery(settings), [job_id])
        except Exception:
            console.print("queue unavailable: the sweeper will send the job")
        console.print(f"entry {entry_id}: job {job_id} queued again")
    elif action == "release":
        console.print(f"entry {entry_id}: original released to {out}")
    else:
        console.print(f"entry {entry_id}: original purged")


@quarantine_app.command("show")
def quarantine_show(entry_id: int, fmt: FormatOpt = "table") -> None:
    """One quarantined instance: reason, message, origin and history (no PHI)."""
    from amana.errors import RejectError
    from archive.work.quarantine import entry_detail

    with _session() as session:
        try:
            detail = entry_detail(session, entry_id)
        except RejectError as exc:
            console.print(f"[red]{exc.message}[/red]")
            raise typer.Exit(2) from exc
    _print([detail], fmt, list(detail))


@quarantine_app.command("retry")
def quarantine_retry(entry_id: int) -> None:
    """Send a held original through the pipeline again (after fixing a profile, say)."""
    _quarantine_action("retry", entry_id)


@quarantine_app.command("release")
def quarantine_release(
    entry_id: int,
    to: Annotated[Path, typer.Option("--to", help="folder that receives the original")],
) -> None:
    """Hand a held original out of Amana (back to its hospital, or for manual review)."""
    _quarantine_action("release", entry_id, to)


@quarantine_app.command("purge")
def quarantine_purge(
    entry_id: int,
    yes: Annotated[bool, typer.Option("--yes", help="confirm the deletion")] = False,
) -> None:
    """Delete a held original for good; the catalog keeps the entry and its reason."""
    if not yes:
        raise typer.BadParameter("purging deletes the original: confirm with --yes")
    _quarantine_action("purge", entry_id)


if __name__ == "__main__":
    app()
