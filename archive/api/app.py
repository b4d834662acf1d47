"""HTTP API for auditors, data stewards and administrators (OpenAPI at /docs).

Every request but the liveness probe is authenticated by a bearer token and leaves an audit
event, including refused ones; if the event cannot be written the answer is 503, so nobody
reads the catalog without a record of it. Audit events hold the actor's token id and role,
the route, the status and the filters that matched something (a filter value that matched
nothing could be anything a user typed, so only its name is kept).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from anonymizer.errors import AmanaError, RejectError, RetryableError
from archive import audit
from archive.api.errors import http_status
from archive.catalog import read as queries
from archive.catalog import search
from archive.catalog.models_governance import ProfileVersion
from archive.governance import sources
from archive.governance import versions as governance
from archive.governance.auth import (
    Permission,
    Principal,
    authenticate,
    create_token,
    list_tokens,
    parse_role,
    revoke_token,
)
from archive.work import quarantine as quarantine_ops

log = logging.getLogger(__name__)

DEFAULT_PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"
UNAUDITED_PATHS = frozenset({"/health"})
TOKEN_ID = re.compile(r"^tok_[0-9a-f]{12}$")
UID = r"^[0-9.]{1,64}$"
MAX_EXPORT_ROWS = 1_000_000
MAX_SAMPLE_BYTES = 64 * 1024 * 1024


@dataclass
class AuditContext:
    """Filled by the route while it runs; written by the middleware once the answer is known."""

    event_id: audit.EventId | None = None
    event_type: audit.EventType | None = None
    action: audit.Action = audit.Action.EXECUTE
    principal: Principal | None = None
    presented_token_id: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def set(
        self,
        event_id: audit.EventId,
        action: audit.Action,
        *,
        event_type: audit.EventType | None = None,
        object_type: str | None = None,
        object_id: str | None = None,
        **detail: Any,
    ) -> None:
        self.event_id = event_id
        self.action = action
        self.event_type = event_type
        self.object_type = object_type
        self.object_id = object_id
        self.detail.update(detail)


def _record_for(request: Request, ctx: AuditContext, status: int) -> audit.AuditRecord:
    route = request.scope.get("route")
    detail: dict[str, Any] = {
        "method": request.method,
        "route": getattr(route, "path", None) or "(no such route)",
        "status": status,
        **ctx.detail,
    }
    principal = ctx.principal
    actor = principal.token_id if principal else (ctx.presented_token_id or "anonymous")
    role = principal.role.value if principal else None
    client = request.client.host if request.client else None
    if status == 401:
        return audit.AuditRecord(
            event_id=audit.EventId.USER_AUTHENTICATION,
            event_type=audit.EventType.LOGIN,
            action=audit.Action.EXECUTE,
            outcome=audit.Outcome.MINOR_FAILURE,
            actor=actor,
            client_address=client,
            detail=detail,
        )
    if status == 403:
        return audit.AuditRecord(
            event_id=audit.EventId.SECURITY_ALERT,
            event_type=audit.EventType.USE_OF_RESTRICTED_FUNCTION,
            action=audit.Action.EXECUTE,
            outcome=audit.Outcome.MINOR_FAILURE,
            actor=actor,
            actor_role=role,
            client_address=client,
            detail=detail,
        )
    if status >= 500:
        outcome = audit.Outcome.SERIOUS_FAILURE
    elif status >= 400:
        outcome = audit.Outcome.MINOR_FAILURE
    else:
        outcome = audit.Outcome.SUCCESS
    default_event = (
        audit.EventId.QUERY if request.method == "GET" else (audit.EventId.APPLICATION_ACTIVITY)
    )
    return audit.AuditRecord(
        event_id=ctx.event_id or default_event,
        event_type=ctx.event_type,
        action=ctx.action,
        outcome=outcome,
        actor=actor,
        actor_role=role,
        client_address=client,
        object_type=ctx.object_type,
        object_id=ctx.object_id,
        detail=detail,
    )


def _filters_for_audit(
    matched: bool, always: dict[str, Any], free: dict[str, Any]
) -> dict[str, Any]:
    """Formatted filters (dates, enums, numbers) always; free-text values only if they matched
    rows, i.e. they are values the catalog itself holds."""
    out = {k: v for k, v in always.items() if v is not None}
    for key, value in free.items():
        if value is not None:
            out[key] = value if matched else "(matched nothing)"
    return out


class Page(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[dict[str, Any]]


class SourceIn(BaseModel):
    ae_title: str = Field(min_length=1, max_length=16)
    address: str = Field(description="IP address or network (CIDR) the PACS connects from")
    profile: str | None = None
    site: str | None = None
    region: str | None = None


class TokenIn(BaseModel):
    role: Literal["auditor", "steward", "admin"]
    label: str | None = Field(default=None, max_length=64, pattern=r"^[\w .@-]*$")


Format = Literal["json", "csv"]

_bearer = HTTPBearer(auto_error=False, description="a token from `amana token create`")


def _session_dep(request: Request) -> Iterator[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(_session_dep)]


def _audit_ctx(request: Request) -> AuditContext:
    ctx = getattr(request.state, "audit", None)
    if ctx is None:  # unaudited paths only
        ctx = AuditContext()
        request.state.audit = ctx
    return ctx


AuditDep = Annotated[AuditContext, Depends(_audit_ctx)]


def _principal_dep(
    ctx: AuditDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    token = credentials.credentials if credentials else None
    if token:
        token_id = token.partition(".")[0]
        # Only a well-formed id goes in the record: a pasted secret must not.
        ctx.presented_token_id = token_id if TOKEN_ID.match(token_id) else "malformed"
    principal = authenticate(session, token)
    ctx.principal = principal
    return principal


def _requires(permission: Permission) -> Callable[[Principal], Principal]:
    def check(principal: Annotated[Principal, Depends(_principal_dep)]) -> Principal:
        principal.require(permission)
        return principal

    return check


CatalogReader = Annotated[Principal, Depends(_requires(Permission.CATALOG_READ))]
AuditReader = Annotated[Principal, Depends(_requires(Permission.AUDIT_READ))]
QuarantineReader = Annotated[Principal, Depends(_requires(Permission.QUARANTINE_READ))]
QuarantineWriter = Annotated[Principal, Depends(_requires(Permission.QUARANTINE_WRITE))]
ProfileReader = Annotated[Principal, Depends(_requires(Permission.PROFILES_READ))]
ProfileWriter = Annotated[Principal, Depends(_requires(Permission.PROFILES_WRITE))]
SourceReader = Annotated[Principal, Depends(_requires(Permission.SOURCES_READ))]
SourceWriter = Annotated[Principal, Depends(_requires(Permission.SOURCES_WRITE))]
TokenAdmin = Annotated[Principal, Depends(_requires(Permission.TOKENS_WRITE))]


def create_app(
    sessions: sessionmaker[Session],
    *,
    profiles_dir: Path = DEFAULT_PROFILES_DIR,
    hostname: str = "-",
    quarantine_dir: Path | None = None,
    spool_dir: Path | None = None,
    publish: Callable[[int], None] | None = None,
) -> FastAPI:
    """`quarantine_dir` and `spool_dir` enable the stewards' retry and purge; `publish` sends
    a retried job id to the queue after the commit (without it the sweeper sends it)."""
    app = FastAPI(
        title="Amana",
        version="0.2.0",
        description=(
            "Pseudonymous catalog and audit trail of the national archive. Bearer tokens: "
            "auditor (catalog, quarantine, audit: read), steward (profiles, quarantine), "
            "admin (sources, tokens). Every request is recorded in the audit trail."
        ),
    )
    app.state.sessions = sessions

    @app.middleware("http")
    async def audit_every_request(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path in UNAUDITED_PATHS:
            return await call_next(request)
        ctx = AuditContext()
        request.state.audit = ctx
        try:
            response = await call_next(request)
        except Exception:
            await _write_audit(request, ctx, 500)
            raise
        if not await _write_audit(request, ctx, response.status_code):
            return JSONResponse({"error": "audit trail unavailable"}, status_code=503)
        return response

    async def _write_audit(request: Request, ctx: AuditContext, status: int) -> bool:
        try:
            await run_in_threadpool(audit.record, sessions, _record_for(request, ctx, status))
        except Exception as exc:
            log.error("audit event not written: %s", type(exc).__name__)
            return False
        return True

    @app.exception_handler(AmanaError)
    async def _amana_error(_request: Request, exc: AmanaError) -> JSONResponse:
        status = http_status(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)

    # --- health --------------------------------------------------------------------------

    @app.get("/health", tags=["service"])
    def health(session: SessionDep) -> dict[str, Any]:
        """Liveness and job counts; no token, not audited (polled every few seconds)."""
        session.execute(text("SELECT 1"))
        return {"status": "ok", "jobs": queries.job_counts(session)}

    # --- catalog -------------------------------------------------------------------------

    @app.get("/studies", tags=["catalog"], response_model=None)
    def studies(
        session: SessionDep,
        ctx: AuditDep,
        _who: CatalogReader,
        date_from: Annotated[str | None, Query(pattern=r"^\d{8}$", description="YYYYMMDD")] = None,
        date_to: Annotated[str | None, Query(pattern=r"^\d{8}$", description="YYYYMMDD")] = None,
        modality: Annotated[str | None, Query(max_length=16)] = None,
        region: Annotated[str | None, Query(max_length=64)] = None,
        profile_version: Annotated[str | None, Query(max_length=64)] = None,
        status: Annotated[Literal["RECEIVING", "COMPLETE"] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
        format: Annotated[Format, Query()] = "json",
    ) -> Page | Response:
        """Studies by shifted study date, modality, region, profile version and status."""
        flt = search.StudyFilter(date_from, date_to, modality, region, profile_version, status)
        total = search.count_studies(session, flt)
        filters = _filters_for_audit(
            total > 0,
            {"date_from": date_from, "date_to": date_to, "status": status},
            {"modality": modality, "region": region, "profile_version": profile_version},
        )
        if format == "csv":
            rows = search.search_studies(session, flt, limit=MAX_EXPORT_ROWS)
            ctx.set(
                audit.EventId.EXPORT,
                audit.Action.READ,
                object_type="catalog",
                object_id="studies",
                filters=filters,
                rows=len(rows),
                format="csv",
            )
            return _csv(search.to_csv(rows, search.STUDY_COLUMNS), "studies.csv")
        items = search.search_studies(session, flt, limit=limit, offset=offset)
        ctx.set(
            audit.EventId.QUERY,
            audit.Action.EXECUTE,
            object_type="catalog",
            object_id="studies",
            filters=filters,
            total=total,
            limit=limit,
            offset=offset,
        )
        return Page(total=total, limit=limit, offset=offset, items=items)

    @app.get("/studies/{study_uid}", tags=["catalog"])
    def study(
        session: SessionDep,
        ctx: AuditDep,
        _who: CatalogReader,
        study_uid: str,
    ) -> dict[str, Any]:
        """One study: series, instances (hash, profile version, pixel actions) and history."""
        ctx.set(audit.EventId.QUERY, audit.Action.READ, object_type="study")
        if not re.match(UID, study_uid):
            raise RejectError("no such study", code="not_found")
        detail = search.study_detail(session, study_uid)
        ctx.object_id = study_uid  # recorded only once it is known to be one of ours
        return detail

    @app.get("/statistics", tags=["catalog"], response_model=None)
    def statistics(
        session: SessionDep,
        ctx: AuditDep,
        _who: CatalogReader,
        format: Annotated[Format, Query()] = "json",
    ) -> dict[str, Any] | Response:
        """Studies and instances per region, modality and month; quarantine rates by reason."""
        stats = search.statistics(session)
        if format == "csv":
            ctx.set(
                audit.EventId.EXPORT,
                audit.Action.READ,
                object_type="catalog",
                object_id="statistics",
                format="csv",
            )
            rows = search.statistics_rows(stats)
            return _csv(search.to_csv(rows, search.STATISTICS_COLUMNS), "statistics.csv")
        ctx.set(
            audit.EventId.QUERY, audit.Action.EXECUTE, object_type="catalog", object_id="statistics"
        )
        return stats

    # --- quarantine ----------------------------------------------------------------------

    @app.get("/quarantine", tags=["quarantine"], response_model=None)
    def quarantine(
        session: SessionDep,
        ctx: AuditDep,
        _who: QuarantineReader,
        reason: Annotated[str | None, Query(max_length=64)] = None,
        status: Annotated[Literal["HELD", "RETRIED", "RELEASED", "PURGED"] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
        format: Annotated[Format, Query()] = "json",
    ) -> Page | Response:
        """Instances held back, with reason code and a message free of patient data."""
        flt = search.QuarantineFilter(reason, status)
        if format == "csv":
            total, rows = search.search_quarantine(session, flt, limit=MAX_EXPORT_ROWS)
            filters = _filters_for_audit(total > 0, {"status": status}, {"reason": reason})
            ctx.set(
                audit.EventId.EXPORT,
                audit.Action.READ,
                object_type="quarantine",
                object_id="quarantine",
                filters=filters,
                rows=len(rows),
                format="csv",
            )
            return _csv(search.to_csv(rows, search.QUARANTINE_COLUMNS), "quarantine.csv")
        total, items = search.search_quarantine(session, flt, limit=limit, offset=offset)
        filters = _filters_for_audit(total > 0, {"status": status}, {"reason": reason})
        ctx.set(
            audit.EventId.QUERY,
            audit.Action.EXECUTE,
            object_type="quarantine",
            object_id="quarantine",
            filters=filters,
            total=total,
        )
        return Page(total=total, limit=limit, offset=offset, items=items)

    @app.get("/quarantine/{entry_id}", tags=["quarantine"])
    def quarantine_entry(
        session: SessionDep, ctx: AuditDep, _who: QuarantineReader, entry_id: int
    ) -> dict[str, Any]:
        """One quarantined instance: reason, message, origin and attempts (no PHI)."""
        ctx.set(audit.EventId.QUERY, audit.Action.READ, object_type="quarantine")
        detail = quarantine_ops.entry_detail(session, entry_id)
        ctx.object_id = str(entry_id)
        return detail

    @app.post("/quarantine/{entry_id}/retry", tags=["quarantine"])
    def quarantine_retry(
        request: Request,
        session: SessionDep,
        ctx: AuditDep,
        who: QuarantineWriter,
        entry_id: int,
    ) -> dict[str, Any]:
        """Send a held original through the pipeline again (after a profile fix, say)."""
        ctx.set(
            audit.EventId.SECURITY_ALERT,
            audit.Action.UPDATE,
            event_type=audit.EventType.USE_OF_RESTRICTED_FUNCTION,
            object_type="quarantine",
        )
        if quarantine_dir is None or spool_dir is None:
            raise RetryableError("quarantine actions are not configured on this API")
        job_id = quarantine_ops.retry(
            session, entry_id, quarantine_dir=quarantine_dir, spool_dir=spool_dir
        )
        audit.append(
            session,
            audit.quarantine_action(
                who.token_id,
                entry_id,
                "retry",
                actor_role=who.role.value,
                client_address=_client(request),
            ),
        )
        session.commit()
        ctx.object_id = str(entry_id)
        queued = False
        if publish is not None:
            try:
                publish(job_id)
                queued = True
            except Exception:  # the sweeper re-sends from the catalog
                log.warning("retried job %s not published; the sweeper will send it", job_id)
        return {"entry_id": entry_id, "job_id": job_id, "queued": queued}

    @app.post("/quarantine/{entry_id}/purge", tags=["quarantine"])
    def quarantine_purge(
        request: Request,
        session: SessionDep,
        ctx: AuditDep,
        who: QuarantineWriter,
        entry_id: int,
    ) -> dict[str, Any]:
        """Delete a held original for good; the entry, its reason and its fate stay."""
        ctx.set(
            audit.EventId.SECURITY_ALERT,
            audit.Action.DELETE,
            event_type=audit.EventType.USE_OF_RESTRICTED_FUNCTION,
            object_type="quarantine",
        )
        if quarantine_dir is None:
            raise RetryableError("quarantine actions are not configured on this API")
        quarantine_ops.purge(session, entry_id, quarantine_dir=quarantine_dir)
        audit.append(
            session,
            audit.quarantine_action(
                who.token_id,
                entry_id,
                "purge",
                actor_role=who.role.value,
                client_address=_client(request),
            ),
        )
        session.commit()
        ctx.object_id = str(entry_id)
        return {"entry_id": entry_id, "status": "PURGED"}

    # --- audit ---------------------------------------------------------------------------

    @app.get("/audit", tags=["audit"], response_model=None)
    def audit_search(
        session: SessionDep,
        ctx: AuditDep,
        _who: AuditReader,
        event: Annotated[str | None, Query(max_length=64, description="code or name")] = None,
        actor: Annotated[str | None, Query(max_length=64)] = None,
        object_id: Annotated[str | None, Query(max_length=128)] = None,
        outcome: Annotated[int | None, Query(ge=0, le=12)] = None,
        since: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}[T0-9:.Z]*$")] = None,
        until: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}[T0-9:.Z]*$")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
        format: Annotated[Format | Literal["syslog"], Query()] = "json",
    ) -> Page | Response:
        """Audit events in chain order; CSV or RFC 5424 syslog lines with `format`."""
        flt = audit.AuditFilter(event, actor, object_id, outcome, since, until)
        total, items = audit.search(session, flt, limit=limit, offset=offset)
        filters = _filters_for_audit(
            total > 0,
            {"outcome": outcome, "since": since, "until": until},
            {"event": event, "actor": actor, "object_id": object_id},
        )
        ctx.set(
            audit.EventId.AUDIT_LOG_USED,
            audit.Action.READ,
            object_type="audit_log",
            object_id="audit",
            filters=filters,
            total=total,
            format=format,
        )
        if format == "csv":
            rows = [audit.event_row(e) for e in audit.iter_events(session, flt)]
            return _csv(search.to_csv(rows, audit.AUDIT_COLUMNS), "audit.csv")
        if format == "syslog":
            lines = [audit.to_syslog(e, hostname=hostname) for e in audit.iter_events(session, flt)]
            return PlainTextResponse("".join(line + "\n" for line in lines))
        return Page(total=total, limit=limit, offset=offset, items=items)

    @app.get("/audit/verify", tags=["audit"])
    def audit_verify(session: SessionDep, ctx: AuditDep, _who: AuditReader) -> dict[str, Any]:
        """Walk the hash chain; every changed, deleted or reordered row is named."""
        report = audit.verify(session)
        ctx.set(
            audit.EventId.AUDIT_LOG_USED,
            audit.Action.EXECUTE,
            object_type="audit_log",
            object_id="verify",
            ok=report.ok,
            checked=report.checked,
        )
        return report.as_dict()

    # --- profiles ------------------------------------------------------------------------

    @app.get("/profiles", tags=["profiles"])
    def profile_versions(
        session: SessionDep,
        ctx: AuditDep,
        _who: ProfileReader,
        name: Annotated[str | None, Query(max_length=64)] = None,
    ) -> list[dict[str, Any]]:
        """Every uploaded version with its status, proposer, approvers and activation."""
        rows = governance.list_versions(session, name)
        ctx.set(
            audit.EventId.QUERY,
            audit.Action.EXECUTE,
            object_type="profile_version",
            filters=_filters_for_audit(bool(rows), {}, {"name": name}),
        )
        return rows

    @app.get("/profiles/{ref}", tags=["profiles"])
    def profile_version(
        session: SessionDep, ctx: AuditDep, _who: ProfileReader, ref: str
    ) -> dict[str, Any]:
        """One version: its YAML text and its differences from the active version."""
        ctx.set(audit.EventId.QUERY, audit.Action.READ, object_type="profile_version")
        pv = governance.get_version(session, ref)
        ctx.object_id = pv.version
        profile = governance.load_profile_text(pv.yaml_text, profiles_dir)
        active = governance.active_version_row(session, pv.name)
        baseline = (
            governance.load_profile_text(active.yaml_text, profiles_dir)
            if active is not None and active.id != pv.id
            else None
        )
        return {
            **governance.version_row(pv),
            "yaml": pv.yaml_text,
            "diff_against_active": governance.profile_diff(baseline, profile)
            if baseline is not None
            else [],
        }

    @app.post("/profiles", tags=["profiles"], status_code=201)
    def propose_profile(
        request: Request,
        session: SessionDep,
        ctx: AuditDep,
        who: ProfileWriter,
        profile: Annotated[UploadFile, File(description="the profile YAML")],
    ) -> dict[str, Any]:
        """Upload a profile: validated with the workers' loader, diffed, stored as PROPOSED."""
        ctx.set(
            audit.EventId.SECURITY_ALERT,
            audit.Action.CREATE,
            event_type=audit.EventType.SECURITY_CONFIGURATION,
            object_type="profile_version",
        )
        data = profile.file.read(governance.MAX_PROFILE_BYTES + 1)
        try:
            yaml_text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RejectError("profile must be UTF-8 text", code="invalid_profile") from exc
        try:
            proposal = governance.propose(
                session, yaml_text, who, profiles_dir, client_address=_client(request)
            )
        finally:
            session.commit()  # the proposal, or the record of a refused one
        ctx.object_id = proposal.version.version
        return {
            **governance.version_row(proposal.version),
            "created": proposal.created,
            "against": proposal.against,
            "diff": proposal.diff,
        }

    @app.post("/profiles/{ref}/dry-run", tags=["profiles"])
    def dry_run(
        session: SessionDep,
        ctx: AuditDep,
        _who: ProfileWriter,
        ref: str,
        samples: Annotated[list[UploadFile], File(description="DICOM files to try")],
    ) -> dict[str, Any]:
        """Run a version on sample files: explain table, outcome and pixel preview for each.
        Nothing is archived; the samples' values are returned, never recorded."""
        ctx.set(
            audit.EventId.APPLICATION_ACTIVITY,
            audit.Action.EXECUTE,
            object_type="profile_version",
            samples=len(samples),
        )
        pv = governance.get_version(session, ref)
        ctx.object_id = pv.version
        profile = governance.load_profile_text(pv.yaml_text, profiles_dir)
        budget = MAX_SAMPLE_BYTES
        files: list[tuple[str, bytes]] = []
        for index, upload in enumerate(samples):
            data = upload.file.read(budget + 1)
            budget -= len(data)
            if budget < 0:
                raise RejectError("samples larger than 64 MB in total", code="too_large")
            files.append((f"sample-{index + 1}", data))
        results = governance.dry_run(profile, files)
        ctx.detail["outcomes"] = [r["result"] for r in results]
        return {"version": pv.version, "name": pv.name, "results": results}

    def _profile_step(
        step: Callable[..., ProfileVersion],
        request: Request,
        session: Session,
        ctx: AuditContext,
        who: Principal,
        ref: str,
    ) -> dict[str, Any]:
        ctx.set(
            audit.EventId.SECURITY_ALERT,
            audit.Action.UPDATE,
            event_type=audit.EventType.SECURITY_CONFIGURATION,
            object_type="profile_version",
        )
        try:
            pv = step(session, ref, who, client_address=_client(request))
        except RejectError:
            session.commit()  # keeps the record of the refusal, nothing else changed
            raise
        session.commit()
        ctx.object_id = pv.version
        return governance.version_row(pv)

    @app.post("/profiles/{ref}/approve", tags=["profiles"])
    def approve_profile(
        request: Request,
        session: SessionDep,
        ctx: AuditDep,
        who: ProfileWriter,
        ref: str,
    ) -> dict[str, Any]:
        """Approve a proposed version (a steward other than its proposer)."""
        return _profile_step(governance.approve, request, session, ctx, who, ref)

    @app.post("/profiles/{ref}/activate", tags=["profiles"])
    def activate_profile(
        request: Request,
        session: SessionDep,
        ctx: AuditDep,
        who: ProfileWriter,
        ref: str,
    ) -> dict[str, Any]:
        """Make an approved version active; workers use it within a minute."""
        return _profile_step(governance.activate, request, session, ctx, who, ref)

    # --- sources -------------------------------------------------------------------------

    @app.get("/sources", tags=["sources"])
    def list_sources(
        session: SessionDep, ctx: AuditDep, _who: SourceReader
    ) -> list[dict[str, Any]]:
        """PACS allowed to send: AE title, address, profile, site and region."""
        ctx.set(audit.EventId.QUERY, audit.Action.EXECUTE, object_type="source")
        return sources.list_sources(session)

    @app.post("/sources", tags=["sources"], status_code=201)
    def add_source(
        session: SessionDep, ctx: AuditDep, _who: SourceWriter, body: SourceIn
    ) -> dict[str, Any]:
        ctx.set(
            audit.EventId.SECURITY_ALERT,
            audit.Action.CREATE,
            event_type=audit.EventType.NETWORK_CONFIGURATION,
            object_type="node",
            # Configuration an admin typed, not patient data: kept even when refused.
            object_id=body.ae_title if sources.AE_TITLE.match(body.ae_title) else None,
        )
        src = sources.add_source(
            session,
            ae_title=body.ae_title,
            address=body.address,
            profile_name=body.profile,
            site=body.site,
            region=body.region,
        )
        session.commit()
        ctx.object_id = src.ae_title
        ctx.detail["address"] = src.address
        return sources.source_row(src)

    @app.delete("/sources/{ae_title}", tags=["sources"], status_code=204)
    def remove_source(
        session: SessionDep, ctx: AuditDep, _who: SourceWriter, ae_title: str
    ) -> Response:
        ctx.set(
            audit.EventId.SECURITY_ALERT,
            audit.Action.DELETE,
            event_type=audit.EventType.NETWORK_CONFIGURATION,
            object_type="node",
        )
        sources.remove_source(session, ae_title)
        session.commit()
        ctx.object_id = ae_title
        return Response(status_code=204)

    # --- tokens --------------------------------------------------------------------------

    @app.post("/tokens", tags=["tokens"], status_code=201)
    def mint_token(
        session: SessionDep, ctx: AuditDep, who: TokenAdmin, body: TokenIn
    ) -> dict[str, Any]:
        """A new token; the secret is shown in this answer only."""
        ctx.set(
            audit.EventId.SECURITY_ALERT,
            audit.Action.CREATE,
            event_type=audit.EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
            object_type="token",
        )
        token_id, token = create_token(
            session, role=parse_role(body.role), created_by=who.token_id, label=body.label
        )
        session.commit()
        ctx.object_id = token_id
        ctx.detail["role"] = body.role
        return {"token_id": token_id, "role": body.role, "token": token}

    @app.get("/tokens", tags=["tokens"])
    def tokens(session: SessionDep, ctx: AuditDep, _who: TokenAdmin) -> list[dict[str, Any]]:
        ctx.set(audit.EventId.QUERY, audit.Action.EXECUTE, object_type="token")
        return list_tokens(session)

    @app.delete("/tokens/{token_id}", tags=["tokens"], status_code=204)
    def revoke(session: SessionDep, ctx: AuditDep, _who: TokenAdmin, token_id: str) -> Response:
        ctx.set(
            audit.EventId.SECURITY_ALERT,
            audit.Action.DELETE,
            event_type=audit.EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
            object_type="token",
        )
        if not TOKEN_ID.match(token_id):
            raise RejectError("no such token", code="not_found")
        revoke_token(session, token_id)
        session.commit()
        ctx.object_id = token_id
        return Response(status_code=204)

    return app


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def _csv(body: str, filename: str) -> Response:
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
