"""What every route depends on: the app's runtime state, a session, the caller, its role,
and the audited unit of work that records the request.

A route that records its request does it through `unit(...)`: the audit event is appended
in the transaction of the route's reads or changes (archive.audit.unit.audited), so a
change and its record are committed together or not at all, and the answer is not given
without its record. The middleware (app.py) records only the requests no route recorded:
refused tokens (401), missing permissions (403), unknown paths, failures outside a unit.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.errors import RejectError
from archive import audit
from archive.api.clients import Network, resolve_client
from archive.api.errors import http_status
from archive.audit.unit import Work, audited
from archive.catalog.search import UNMATCHED
from archive.governance.auth import Permission, Principal, authenticate
from archive.stores import ArchiveStore
from archive.work.publish import JobSink

TOKEN_ID = re.compile(r"^tok_[0-9a-f]{12}$")
MAX_EXPORT_ROWS = 1_000_000


class SentJobs:
    """Wraps the process's job sink to tell a route whether its ids left right after the
    commit (the sink runs in the committing thread; failures are the sweeper's business)."""

    def __init__(self, sink: JobSink) -> None:
        self._sink = sink
        self._sent: set[int] = set()
        self._lock = threading.Lock()

    def __call__(self, job_ids: Sequence[int]) -> None:
        self._sink(job_ids)
        with self._lock:
            self._sent.update(job_ids)

    def take(self, job_id: int) -> bool:
        with self._lock:
            if job_id in self._sent:
                self._sent.discard(job_id)
                return True
            return False


@dataclass(frozen=True)
class ApiState:
    """What `create_app` was given, shared by the routers."""

    sessions: sessionmaker[Session]
    profiles_dir: Path
    hostname: str = "-"
    quarantine_dir: Path | None = None
    spool_dir: Path | None = None
    # The ingest node whose spool `spool_dir` is: a retried original is its job.
    node: str | None = None
    sent: SentJobs | None = None
    # Peers whose X-Forwarded-For is believed (archive/api/clients.py); none by default.
    trusted_proxies: tuple[Network, ...] = ()
    # The pseudonymization secret, from which dataset splits are keyed (archive/datasets);
    # without it the API lists datasets but does not create them.
    dataset_secret: bytes | None = None
    # The de-identified files (AMANA_ARCHIVE_DIR): dataset exports over HTTP read them (and
    # write under the export root only; without both the API refuses exports, 503), and the
    # console draws its thumbnails from them.
    archive_dir: Path | None = None
    # The archive store the exports read (AMANA_ARCHIVE_URL; a FileStore of archive_dir
    # when none is given).
    archive_store: ArchiveStore | None = None
    export_dir: Path | None = None
    # Where the console's "release" hands held originals out (AMANA_RELEASE_DIR); without
    # it, releasing stays with `amana quarantine release --to`.
    release_dir: Path | None = None
    # The profile of unattributed jobs and of sources naming none (AMANA_PROFILE).
    default_profile: str = "ma-national"


def _state(request: Request) -> ApiState:
    return cast(ApiState, request.app.state.api)


StateDep = Annotated[ApiState, Depends(_state)]


@dataclass
class AuditContext:
    """The request's audit event as the route declares it. Written by the route's unit of
    work, or by the middleware when no unit recorded it (`recorded` stays False)."""

    event_id: audit.EventId | None = None
    event_type: audit.EventType | None = None
    action: audit.Action = audit.Action.EXECUTE
    principal: Principal | None = None
    presented_token_id: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    recorded: bool = False

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


def client_address(request: Request) -> str | None:
    peer = request.client.host if request.client else None
    return resolve_client(
        peer, request.headers.get("x-forwarded-for"), _state(request).trusted_proxies
    )


def record_for(request: Request, ctx: AuditContext, status: int) -> audit.AuditRecord:
    """The request's event: 401 and 403 have events of their own; anything else is the
    event the route declared (a query by default for GET), its outcome from the status."""
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
    client = client_address(request)
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
        audit.EventId.QUERY if request.method == "GET" else audit.EventId.APPLICATION_ACTIVITY
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


def filters_for_audit(
    matched: bool, always: dict[str, Any], free: dict[str, Any]
) -> dict[str, Any]:
    """Formatted filters (dates, enums, numbers) always; free-text values only if they matched
    rows, i.e. they are values the catalog itself holds."""
    out = {k: v for k, v in always.items() if v is not None}
    for key, value in free.items():
        if value is not None:
            out[key] = value if matched else UNMATCHED
    return out


def _session_dep(request: Request) -> Iterator[Session]:
    with _state(request).sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(_session_dep)]


def _audit_ctx(request: Request) -> AuditContext:
    ctx = getattr(request.state, "audit", None)
    if ctx is None:  # unaudited paths only
        ctx = AuditContext()
        request.state.audit = ctx
    return cast(AuditContext, ctx)


AuditDep = Annotated[AuditContext, Depends(_audit_ctx)]

_bearer = HTTPBearer(auto_error=False, description="a token from `amana token create`")


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
UserReader = Annotated[Principal, Depends(_requires(Permission.USERS_READ))]
UserAdmin = Annotated[Principal, Depends(_requires(Permission.USERS_WRITE))]
NodeReader = Annotated[Principal, Depends(_requires(Permission.NODES_READ))]
DatasetReader = Annotated[Principal, Depends(_requires(Permission.DATASETS_READ))]
DatasetWriter = Annotated[Principal, Depends(_requires(Permission.DATASETS_WRITE))]
DatasetSealer = Annotated[Principal, Depends(_requires(Permission.DATASETS_SEAL))]


@contextmanager
def unit(request: Request, ctx: AuditContext, session: Session) -> Iterator[Work]:
    """The request's reads or changes and its audit event, as one transaction.

    The event is the one `ctx` declares (call `ctx.set` first), with the route's success
    status; a refusal is recorded with its HTTP status and rolls the changes back. Either
    way the request is marked recorded, so the middleware does not record it again. Any
    other error (the audit head missing, the database gone) leaves nothing and no record:
    the middleware then records the failure if it can, or answers 503.
    """
    route = request.scope.get("route")
    status = getattr(route, "status_code", None) or 200
    try:
        with audited(session, record_for(request, ctx, status)) as work:
            try:
                yield work
            except RejectError as refusal:
                work.note(status=http_status(refusal))
                raise
    except RejectError:
        ctx.recorded = True
        raise
    ctx.recorded = True


def csv_response(body: str, filename: str) -> Response:
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# OpenAPI: the CSV (and syslog) alternatives of a JSON answer, and the error answers.
CSV_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON, or CSV with `format=csv`",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}
