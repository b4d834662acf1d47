"""HTTP API for auditors, data stewards and administrators (OpenAPI at /docs).

Every request but the liveness probe is authenticated by a bearer token and leaves exactly
one audit event, including refused ones. A route records its request in the transaction of
its own reads and changes (`archive.api.deps.unit`); this module's middleware records the
requests no route recorded (bad tokens, missing permissions, unknown paths, failures). If
the event cannot be written the answer is 503 and nothing was changed, so nobody reads or
changes the catalog without a record of it. Events hold the actor's token id and role, the
route, the status and the filters that matched something (a filter value that matched
nothing could be anything a user typed, so only its name is kept).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from anonymizer.errors import AmanaError, RejectError
from archive import audit
from archive.api.clients import AuthFailureLimiter, parse_networks
from archive.api.deps import ApiState, AuditContext, SentJobs, client_address, record_for
from archive.api.errors import http_status
from archive.api.routers import ROUTERS
from archive.api.schemas import ErrorOut
from archive.stores import ArchiveStore
from archive.stores.file import FileStore
from archive.work.publish import JobSink, attach_job_sink

log = logging.getLogger(__name__)

UNAUDITED_PATHS = frozenset({"/health"})
# The console's stylesheet: the same file for everyone, and a page view is already recorded.
UNAUDITED_PREFIXES = ("/console/static/",)
# How often the summaries of failed authentications of past minutes are written.
SUMMARY_FLUSH_S = 15.0

# Documented on every route: the shape of every refusal and failure.
ERROR_ANSWERS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorOut, "description": meaning}
    for code, meaning in (
        (401, "missing, wrong or revoked token"),
        (403, "the token's role may not do this"),
        (429, "too many failed authentications from this address; see Retry-After"),
        (503, "the audit trail or the catalog is unavailable; nothing was done"),
    )
}


def create_app(
    sessions: sessionmaker[Session],
    *,
    profiles_dir: Path,
    hostname: str = "-",
    quarantine_dir: Path | None = None,
    spool_dir: Path | None = None,
    node: str | None = None,
    publish: JobSink | None = None,
    trusted_proxies: Sequence[str] = (),
    auth_failures_per_minute: int = 10,
    broker_state: Callable[[], str] | None = None,
    dataset_secret: bytes | None = None,
    archive_dir: Path | None = None,
    archive_store: ArchiveStore | None = None,
    export_dir: Path | None = None,
    release_dir: Path | None = None,
    default_profile: str = "ma-national",
) -> FastAPI:
    """`quarantine_dir` and `spool_dir` enable the stewards' retry and purge; `publish` is
    attached to `sessions` as their job sink, so a retried job is sent once its transaction
    commits (without it, the sweeper sends it). `trusted_proxies` and
    `auth_failures_per_minute`: see archive/api/clients.py; `broker_state` answers /health's
    `broker`. `release_dir` enables the release of held originals over HTTP;
    `archive_dir` gives the console its
    thumbnails; `archive_store` (default: the folder `archive_dir`) is what dataset exports
    read; `default_profile` is the workers' AMANA_PROFILE (for the stewards' previews)."""
    limiter = AuthFailureLimiter(auth_failures_per_minute)

    async def flush_summaries(*, everything: bool = False) -> None:
        for summary in limiter.due(everything=everything):
            try:
                await run_in_threadpool(audit.record, sessions, summary.record())
            except Exception as exc:
                log.error("authentication failure summary not written: %s", type(exc).__name__)
                limiter.put_back(summary)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async def every_few_seconds() -> None:
            while True:
                await asyncio.sleep(SUMMARY_FLUSH_S)
                await flush_summaries()

        task = asyncio.create_task(every_few_seconds())
        try:
            yield
        finally:
            task.cancel()
            await flush_summaries(everything=True)

    app = FastAPI(
        lifespan=lifespan,
        title="Amana",
        version="0.2.0",
        description=(
            "Pseudonymous catalog and audit trail of the national archive. Bearer tokens: "
            "auditor (catalog, quarantine, audit: read), steward (profiles, quarantine), "
            "admin (sources, tokens), researcher (datasets), certifier (sealed datasets). "
            "Every request is recorded in the audit trail."
        ),
        responses=ERROR_ANSWERS,
        # Served by archive.console from vendored copies, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    sent = None
    if publish is not None:
        sent = SentJobs(publish)
        attach_job_sink(sessions, sent)
    app.state.api = ApiState(
        sessions=sessions,
        profiles_dir=profiles_dir,
        hostname=hostname,
        quarantine_dir=quarantine_dir,
        spool_dir=spool_dir,
        node=node,
        sent=sent,
        trusted_proxies=parse_networks(trusted_proxies),
        dataset_secret=dataset_secret,
        archive_dir=archive_dir,
        archive_store=(
            archive_store
            if archive_store is not None or archive_dir is None
            else FileStore(archive_dir)
        ),
        export_dir=export_dir,
        release_dir=release_dir,
        default_profile=default_profile,
    )
    app.state.broker_state = broker_state
    for router in ROUTERS:
        app.include_router(router)
    from archive.console import install_console  # the console's pages use this package

    install_console(app)

    async def write_audit(request: Request, ctx: AuditContext, status: int) -> bool:
        try:
            await run_in_threadpool(audit.record, sessions, record_for(request, ctx, status))
        except Exception as exc:
            log.error("audit event not written: %s", type(exc).__name__)
            return False
        return True

    @app.middleware("http")
    async def audit_unrecorded_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if path in UNAUDITED_PATHS or path.startswith(UNAUDITED_PREFIXES):
            return await call_next(request)
        client = client_address(request) or "-"
        wait = limiter.retry_after(client)
        if wait is not None:
            # Counted into the minute's summary; the token is not even looked at.
            refusal = RejectError(
                "too many failed authentications from this address", code="rate_limited"
            )
            return JSONResponse(
                {"error": str(refusal)},
                status_code=http_status(refusal),
                headers={"Retry-After": str(wait)},
            )
        ctx = AuditContext()
        request.state.audit = ctx
        try:
            response = await call_next(request)
        except Exception:
            if not ctx.recorded:
                await write_audit(request, ctx, 500)
            raise
        if response.status_code == 401 and not limiter.failed(client, ctx.presented_token_id):
            return response  # carried by the summary of this client's minute
        await flush_summaries()
        if ctx.recorded:
            return response
        if not await write_audit(request, ctx, response.status_code):
            return JSONResponse({"error": "audit trail unavailable"}, status_code=503)
        return response

    @app.exception_handler(AmanaError)
    async def amana_error(_request: Request, exc: AmanaError) -> JSONResponse:
        status = http_status(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)

    return app
