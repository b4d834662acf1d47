"""The `amana` command."""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress

from amana import cli_governance, startup
from amana.cli_anonymize import anonymize
from amana.cli_catalog import audit_app, catalog_app
from amana.cli_common import console
from amana.cli_datasets import dataset_app
from amana.cli_nodes import nodes
from amana.cli_profile import profile_app
from amana.cli_quarantine import quarantine_app
from amana.cli_sources import sources_app
from amana.cli_tokens import token_app
from amana.cli_users import user_app
from amana.logsetup import configure_logging
from amana.sessions import anchored
from amana.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

app = typer.Typer(
    help="Amana: DICOM de-identification into a national archive.", no_args_is_help=True
)
db_app = typer.Typer(help="Catalog schema.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(audit_app, name="audit")
app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")
app.add_typer(sources_app, name="sources")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(db_app, name="db")
app.add_typer(profile_app, name="profile")
app.add_typer(dataset_app, name="dataset")
app.command("nodes")(nodes)
for _command in (
    cli_governance.propose,
    cli_governance.approve,
    cli_governance.activate,
    cli_governance.versions,
):
    profile_app.command(_command.__name__)(_command)
app.command("anonymize")(anonymize)


def _settings() -> Settings:
    settings = startup.load()
    startup.check_values(settings)
    configure_logging(settings.log_level)
    return settings


def _dataset_secret(settings: Settings) -> bytes | None:
    """The API creates datasets only where the pseudonymization key is (the split key is
    derived from it); elsewhere it lists them."""
    from amana.keys import load_key

    return load_key(settings.key_path).secret if settings.key_path.exists() else None


def _tls_failed(exc: Exception) -> typer.Exit:
    """One line naming the TLS variable at fault, and the exit code of a bad configuration."""
    typer.echo(f"amana: {exc}", err=True)
    return typer.Exit(2)


def _prepare_dirs(settings: Settings) -> None:
    startup.prepare_dirs(settings)


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


def _register_builtin_profiles(settings: Settings) -> None:
    """The shipped profiles as catalog versions (once; every entry point asks, after the
    migrations), so workers and stewards' diffs start from what runs."""
    from archive.catalog.db import make_engine, make_sessionmaker
    from archive.governance.builtins import register_builtin_profiles

    engine = make_engine(settings.db_url)
    try:
        sessions = anchored(make_sessionmaker(engine), settings)
        register_builtin_profiles(sessions, settings.profiles_dir)
    finally:
        engine.dispose()


@app.command()
def run() -> None:
    """Everything on one machine: receiver, worker, sweeper and API (embedded defaults)."""
    from amana.supervisor import supervise
    from amana.tls import TlsConfigError, check_tls_settings
    from archive.catalog.migrate import upgrade

    settings = _settings()
    # Everything a child would otherwise find out by dying, checked before any child starts.
    startup.check_ports(settings, dicom=True, api=True)
    try:
        check_tls_settings(settings)
    except TlsConfigError as exc:
        raise _tls_failed(exc) from exc
    _prepare_dirs(settings)
    startup.check_key(settings, create=True)
    with startup.setting("database_url", "cannot bring the catalog to the latest schema"):
        upgrade(settings.db_url, node=settings.node)
        _register_builtin_profiles(settings)
    startup.check_profile(settings)
    tls = f" (TLS :{settings.dicom_tls_port})" if settings.dicom_tls_port is not None else ""
    console.print(
        f"Amana: DICOM {settings.ae_title}@{settings.dicom_host}:{settings.dicom_port}{tls}, "
        f"API {'https' if settings.api_tls_cert else 'http'}://{settings.api_host}:"
        f"{settings.api_port}/docs, home {settings.home}"
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
    if sibling:
        from amana.listeners import watch_lifeline

        watch_lifeline()  # from the start: a sibling whose parent is gone must not start
    from amana.receiver import run_receiver
    from amana.tls import TlsConfigError

    settings = _settings()
    if not sibling:  # a sibling joins the port its owner holds
        startup.check_ports(settings, dicom=True, api=False)
    _prepare_dirs(settings)
    _wait_for_schema(settings)
    _register_builtin_profiles(settings)
    try:
        run_receiver(settings, sweeper=not no_sweeper, sibling=sibling)
    except TlsConfigError as exc:
        raise _tls_failed(exc) from exc
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
    startup.check_key(settings, create=False)
    _wait_for_schema(settings)
    _register_builtin_profiles(settings)
    startup.check_profile(settings)
    run_worker(settings, concurrency=concurrency)


@app.command()
def api() -> None:
    """The HTTP API (OpenAPI at /docs)."""
    import socket

    import uvicorn

    from amana.archive_store import archive_store
    from amana.broker import CachedProbe, probe
    from amana.celery_app import make_celery, node_queue
    from amana.publisher import publish_now
    from amana.tls import TlsConfigError, uvicorn_tls_options
    from archive import audit
    from archive.api import create_app
    from archive.catalog.db import make_engine, make_sessionmaker

    settings = _settings()
    startup.check_ports(settings, dicom=False, api=True)
    try:
        tls_options = uvicorn_tls_options(settings)
    except TlsConfigError as exc:
        raise _tls_failed(exc) from exc
    _wait_for_schema(settings)
    _register_builtin_profiles(settings)
    sessions = anchored(make_sessionmaker(make_engine(settings.db_url)), settings)
    celery = make_celery(settings)
    # create_app attaches it as the sessions' job sink: a retried job is sent once committed.
    web = create_app(
        sessions,
        profiles_dir=settings.profiles_dir,
        hostname=socket.gethostname(),
        quarantine_dir=settings.quarantine_path,
        spool_dir=settings.spool_path,
        node=settings.node,
        # The only jobs this API makes are retried originals, now in this node's spool.
        publish=lambda job_ids: publish_now(celery, job_ids, queue=node_queue(settings.node)),
        trusted_proxies=settings.trusted_proxies,
        auth_failures_per_minute=settings.auth_failures_per_minute,
        # The API probes the broker itself: it uses the receivers' AMANA_BROKER_URL, and a
        # probe needs no shared file or catalog table (it may run on another machine).
        broker_state=CachedProbe(lambda: probe(celery)),
        dataset_secret=_dataset_secret(settings),
        archive_dir=settings.archive_path,
        archive_store=archive_store(settings),
        export_dir=settings.export_path,
        release_dir=settings.release_path,
        default_profile=settings.profile,
    )
    audit.record(sessions, audit.application_activity("api", started=True))
    try:
        # Proxy headers are the app's business, believed only from AMANA_TRUSTED_PROXIES:
        # uvicorn's own handling would trust 127.0.0.1 whatever the setting says.
        uvicorn.run(
            web,
            host=settings.api_host,
            port=settings.api_port,
            log_level="warning",
            proxy_headers=False,
            **tls_options,
        )
    finally:
        audit.record(sessions, audit.application_activity("api", started=False))


def _import_source(sessions: sessionmaker[Session], ae_title: str | None) -> int | None:
    """The registered, enabled source an import is attributed to (refused otherwise)."""
    from amana.cli_common import fail
    from amana.errors import RejectError
    from archive.governance.sources import get_source

    if ae_title is None:
        return None
    with sessions() as session:
        try:
            source = get_source(session, ae_title)
        except RejectError as exc:
            raise fail(exc) from exc
        if not source.enabled:
            raise fail(RejectError("source disabled", code="bad_source"))
        return source.id


@app.command("import")
def import_(
    folder: Annotated[Path, typer.Argument(exists=True, help="a backlog folder or file")],
    source: Annotated[
        str | None,
        typer.Option(help="AE title of the registered source the files came from"),
    ] = None,
) -> None:
    """Queue a backlog folder through the same spool, jobs and workers as network transfers;
    with --source, the studies get that source's profile and region."""
    from amana.celery_app import make_celery, node_queue
    from amana.publisher import Publisher, close_marking_unsent
    from archive.catalog.db import make_engine, make_sessionmaker
    from archive.work.publish import attach_job_sink
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
    sessions = anchored(make_sessionmaker(make_engine(settings.db_url)), settings)
    source_id = _import_source(sessions, source)
    publisher = Publisher(make_celery(settings), queue=node_queue(settings.node))
    attach_job_sink(sessions, publisher.submit)
    total = sum(1 for _ in iter_files(folder))
    with Progress(console=console) as progress:
        task = progress.add_task("importing", total=total)
        report = import_folder(
            folder,
            spool=spool,
            sessions=sessions,
            ledger=ImportLedger(settings.home / "imports" / "ledger.txt"),
            progress=lambda n: progress.update(task, completed=n + 1),
            source_id=source_id,
            calling_ae=source.strip() if source_id is not None and source else None,
            node=settings.node,
        )
    console.print(
        f"queued {report.queued} of {total} files"
        f" ({report.already_imported} already imported earlier)"
    )
    for path, reason in report.skipped:
        console.print(f"  skipped {path}: {reason}")
    unsent = close_marking_unsent(publisher, sessions, timeout=60)
    if unsent:
        console.print(
            f"{unsent} jobs could not be sent now; the running sweeper sends them at its next pass"
        )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the catalog migrations (the compose `migrate` job runs this)."""
    from archive.catalog.migrate import upgrade

    settings = _settings()
    _prepare_dirs(settings)
    upgrade(settings.db_url, node=settings.node)
    _register_builtin_profiles(settings)
    console.print("catalog schema is up to date")


if __name__ == "__main__":
    app()
