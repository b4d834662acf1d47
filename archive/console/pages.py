"""The console's pages: sign-in, overview, studies, quarantine, audit and reports.

Each page reads through the same functions as its API route (archive.catalog.search,
reports, statistics, archive.work.quarantine, archive.audit) and records the same event.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from anonymizer.errors import RejectError
from archive import audit
from archive.api import quarantine_steps as steps
from archive.api.deps import (
    MAX_EXPORT_ROWS,
    TOKEN_ID,
    AuditDep,
    SessionDep,
    StateDep,
    csv_response,
    filters_for_audit,
    unit,
)
from archive.api.params import RowId
from archive.catalog import reports, search, service_state, thumbnails
from archive.catalog.csv_rows import to_csv
from archive.catalog.statistics import job_counts
from archive.console.session import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_LIFETIME,
    ConsoleSession,
    close_session,
    login_csrf,
    open_session,
)
from archive.console.web import PREFIX, ConsoleDep, SignedIn, now, page, require_csrf
from archive.governance.auth import AuthError, Permission, Principal, authenticate
from archive.work import quarantine as quarantine_ops

router = APIRouter(prefix=PREFIX, include_in_schema=False)

Who = tuple[Principal, ConsoleSession]
CatalogPage = Annotated[Who, Depends(page(Permission.CATALOG_READ))]
QuarantinePage = Annotated[Who, Depends(page(Permission.QUARANTINE_READ))]
QuarantineAction = Annotated[Who, Depends(page(Permission.QUARANTINE_WRITE))]
AuditPage = Annotated[Who, Depends(page(Permission.AUDIT_READ))]
Text = Annotated[str | None, Query(max_length=64)]
STUDY_UID = re.compile(r"^[0-9.]{1,64}$")


def _blank(value: str | None) -> str | None:
    """An empty form field is no filter."""
    return value.strip() or None if value is not None else None


def _no_store(response: Response) -> Response:
    """Exports of catalog data stay out of the browser's and any proxy's cache."""
    response.headers["Cache-Control"] = "no-store"
    return response


def _cookie_flags(request: Request) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
        "path": PREFIX,
    }


# --- sign-in --------------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, console: ConsoleDep) -> Response:
    csrf = login_csrf()
    response = console.render(request, "login.html", csrf=csrf, error=None)
    response.set_cookie(LOGIN_CSRF_COOKIE, csrf, max_age=3600, **_cookie_flags(request))
    return response


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    console: ConsoleDep,
    token: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str, Form(max_length=100)],
) -> Response:
    """A token for a session cookie. A wrong token is a 401, recorded and counted by the
    API's failed-authentication limit like a wrong bearer token."""
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or not hmac.compare_digest(expected.encode(), csrf.encode()):
        fresh = login_csrf()
        response = console.render(
            request, "login.html", status_code=403, csrf=fresh, error="expired"
        )
        response.set_cookie(LOGIN_CSRF_COOKIE, fresh, max_age=3600, **_cookie_flags(request))
        return response
    token = token.strip()
    token_id = token.partition(".")[0]
    ctx.presented_token_id = token_id if TOKEN_ID.match(token_id) else "malformed"
    try:
        principal = authenticate(session, token)
    except AuthError:
        session.rollback()
        fresh = login_csrf()
        response = console.render(
            request, "login.html", status_code=401, csrf=fresh, error="refused"
        )
        response.set_cookie(LOGIN_CSRF_COOKIE, fresh, max_age=3600, **_cookie_flags(request))
        return response
    ctx.principal = principal
    ctx.set(
        audit.EventId.USER_AUTHENTICATION,
        audit.Action.EXECUTE,
        event_type=audit.EventType.LOGIN,
        object_type="console",
        object_id="sign-in",
    )
    with unit(request, ctx, session):
        console_session = open_session(session, principal.token_id, now())
    signed_in = RedirectResponse(f"{PREFIX}/", status_code=303)
    signed_in.set_cookie(
        SESSION_COOKIE,
        console_session.sid,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        **_cookie_flags(request),
    )
    signed_in.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
    return signed_in


@router.post("/logout")
def logout(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    who: SignedIn,
    csrf: Annotated[str, Form(max_length=100)],
) -> Response:
    require_csrf(who[1], csrf)
    ctx.set(
        audit.EventId.USER_AUTHENTICATION,
        audit.Action.EXECUTE,
        event_type=audit.EventType.LOGOUT,
        object_type="console",
        object_id="sign-out",
    )
    with unit(request, ctx, session):
        close_session(session, who[1])
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


# --- overview -------------------------------------------------------------------------------


@router.get("/")
def overview(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    console: ConsoleDep,
    state: StateDep,
    who: SignedIn,
) -> Response:
    """Per source: last arrival, instances and studies today and over 7 days, quarantines
    by reason, backlog, refused associations; the receivers', workers' and broker's state
    (what /health reports, and the components' last start or stop). Users without catalog
    access get the menu."""
    principal, console_session = who
    if not principal.can(Permission.CATALOG_READ):
        ctx.set(audit.EventId.QUERY, audit.Action.READ, object_type="console", object_id="menu")
        with unit(request, ctx, session):
            pass
        return console.render(request, "menu.html", principal=principal, session=console_session)
    ctx.set(audit.EventId.QUERY, audit.Action.READ, object_type="catalog", object_id="overview")
    today = now().date()
    with unit(request, ctx, session):
        week = reports.report(
            session,
            reports.ReportFilter(
                received_from=(today - timedelta(days=6)).isoformat(),
                received_to=today.isoformat(),
            ),
        )
        sources = reports.source_activity(session, today.isoformat())
        backlog = job_counts(session)
        hours = reports.hourly_instances(session, now(), hours=12)
        refused = service_state.refusals(session, (today - timedelta(days=6)).isoformat())
        components = service_state.components(session)
    broker = request.app.state.broker_state
    return console.render(
        request,
        "overview.html",
        principal=principal,
        session=console_session,
        week=week,
        sources=sources,
        backlog=backlog,
        broker=broker() if broker is not None else None,
        hours=hours,
        refused=refused,
        components=components,
        peak=max([count for _, count in hours] + [1]),
    )


# --- studies --------------------------------------------------------------------------------


def _study_filter(
    source: str | None,
    received_from: str | None,
    received_to: str | None,
    region: str | None,
    modality: str | None,
    profile_version: str | None,
    status: str | None,
) -> search.StudyFilter:
    return search.StudyFilter(
        modality=_blank(modality),
        region=_blank(region),
        profile_version=_blank(profile_version),
        status=_blank(status),
        source=_blank(source),
        received_from=_blank(received_from),
        received_to=_blank(received_to),
    )


def _study_audit(flt: search.StudyFilter, matched: bool) -> dict[str, Any]:
    return filters_for_audit(
        matched,
        {
            "received_from": flt.received_from,
            "received_to": flt.received_to,
            "status": flt.status,
        },
        {
            "source": flt.source,
            "modality": flt.modality,
            "region": flt.region,
            "profile_version": flt.profile_version,
        },
    )


@router.get("/studies")
def studies(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    console: ConsoleDep,
    who: CatalogPage,
    source: Text = None,
    received_from: Text = None,
    received_to: Text = None,
    region: Text = None,
    modality: Text = None,
    profile_version: Text = None,
    status: Text = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    flt = _study_filter(
        source, received_from, received_to, region, modality, profile_version, status
    )
    ctx.set(audit.EventId.QUERY, audit.Action.EXECUTE, object_type="catalog", object_id="studies")
    with unit(request, ctx, session) as work:
        total = search.count_studies(session, flt)
        rows = search.search_studies(session, flt, limit=50, offset=offset)
        work.note(filters=_study_audit(flt, total > 0), total=total, offset=offset)
    return console.render(
        request,
        "studies.html",
        principal=who[0],
        session=who[1],
        flt=flt,
        total=total,
        rows=rows,
        offset=offset,
        query=request.url.query,
    )


@router.get("/studies.csv")
def studies_csv(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    _who: CatalogPage,
    source: Text = None,
    received_from: Text = None,
    received_to: Text = None,
    region: Text = None,
    modality: Text = None,
    profile_version: Text = None,
    status: Text = None,
) -> Response:
    flt = _study_filter(
        source, received_from, received_to, region, modality, profile_version, status
    )
    ctx.set(
        audit.EventId.EXPORT,
        audit.Action.READ,
        object_type="catalog",
        object_id="studies",
        format="csv",
    )
    with unit(request, ctx, session) as work:
        rows = search.search_studies(session, flt, limit=MAX_EXPORT_ROWS)
        work.note(filters=_study_audit(flt, bool(rows)), rows=len(rows))
    return _no_store(csv_response(to_csv(rows, search.STUDY_COLUMNS), "studies.csv"))


@router.get("/studies/{study_uid}")
def study(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    console: ConsoleDep,
    who: CatalogPage,
    study_uid: str,
) -> Response:
    ctx.set(audit.EventId.QUERY, audit.Action.READ, object_type="study")
    with unit(request, ctx, session) as work:
        if not STUDY_UID.match(study_uid):
            raise RejectError("no such study", code="not_found")
        detail = search.study_detail(session, study_uid)
        work.note(object_id=study_uid)
    return console.render(request, "study.html", principal=who[0], session=who[1], study=detail)


@router.get("/studies/{study_uid}/series/{series_uid}/thumbnail.png")
def series_thumbnail(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    state: StateDep,
    _who: CatalogPage,
    study_uid: str,
    series_uid: str,
) -> Response:
    """A series' picture from its de-identified archived file. The browser may keep it (it
    is the archive's own pixels, and the study page that links it is recorded)."""
    ctx.set(audit.EventId.INSTANCES_ACCESSED, audit.Action.READ, object_type="series")
    if state.archive_store is None:
        raise RejectError("no archive on this API", code="not_found")
    with unit(request, ctx, session) as work:
        if not (STUDY_UID.match(study_uid) and STUDY_UID.match(series_uid)):
            raise RejectError("no such series", code="not_found")
        work.note(object_id=series_uid, view="thumbnail")
        relpath = thumbnails.middle_instance(session, study_uid, series_uid)
    # Read from the archive store (a file, or WADO-RS) once the catalog's transaction is
    # over: a slow archive holds no catalog connection.
    png = thumbnails.picture(state.archive_store, relpath)
    return Response(
        png,
        media_type="image/png",
        headers={
            "Cache-Control": "private, max-age=86400",
            "X-Content-Type-Options": "nosniff",
        },
    )


# --- quarantine -----------------------------------------------------------------------------


@router.get("/quarantine")
def quarantine(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    console: ConsoleDep,
    who: QuarantinePage,
    reason: Text = None,
    status: Text = None,
) -> Response:
    flt = search.QuarantineFilter(_blank(reason), _blank(status))
    ctx.set(
        audit.EventId.QUERY,
        audit.Action.EXECUTE,
        object_type="quarantine",
        object_id="quarantine",
    )
    with unit(request, ctx, session) as work:
        total, rows = search.search_quarantine(session, flt, limit=200)
        work.note(
            filters=filters_for_audit(total > 0, {"status": flt.status}, {"reason": flt.reason}),
            total=total,
        )
    return console.render(
        request,
        "quarantine.html",
        principal=who[0],
        session=who[1],
        flt=flt,
        total=total,
        rows=rows,
    )


@router.get("/quarantine/{entry_id}")
def quarantine_entry(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    console: ConsoleDep,
    who: QuarantinePage,
    entry_id: RowId,
    done: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    ctx.set(audit.EventId.QUERY, audit.Action.READ, object_type="quarantine")
    with unit(request, ctx, session) as work:
        entry = quarantine_ops.entry_detail(session, entry_id)
        work.note(object_id=str(entry_id))
    return console.render(
        request,
        "quarantine_entry.html",
        principal=who[0],
        session=who[1],
        entry=entry,
        done=done,
    )


def _confirmed(who: Who, csrf: str, confirm: str | None) -> bool:
    """A steward's form: its CSRF token first (a forged form records nothing), then whether
    the confirmation box was ticked (the step records a refusal when it was not)."""
    require_csrf(who[1], csrf)
    return confirm == "yes"


@router.post("/quarantine/{entry_id}/retry")
def quarantine_retry(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    state: StateDep,
    who: QuarantineAction,
    entry_id: RowId,
    csrf: Annotated[str, Form(max_length=100)],
    confirm: Annotated[str | None, Form(max_length=8)] = None,
) -> Response:
    """Send a held original through the pipeline again (the API's retry)."""
    confirmed = _confirmed(who, csrf, confirm)
    steps.retry(request, ctx, session, state, entry_id, confirmed=confirmed)
    return RedirectResponse(f"{PREFIX}/quarantine/{entry_id}?done=retry", status_code=303)


@router.post("/quarantine/{entry_id}/release")
def quarantine_release(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    state: StateDep,
    who: QuarantineAction,
    entry_id: RowId,
    csrf: Annotated[str, Form(max_length=100)],
    confirm: Annotated[str | None, Form(max_length=8)] = None,
) -> Response:
    """Hand a held original out of Amana into the release folder (the API's release)."""
    confirmed = _confirmed(who, csrf, confirm)
    steps.release(request, ctx, session, state, entry_id, confirmed=confirmed)
    return RedirectResponse(f"{PREFIX}/quarantine/{entry_id}?done=release", status_code=303)


@router.post("/quarantine/{entry_id}/purge")
def quarantine_purge(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    state: StateDep,
    who: QuarantineAction,
    entry_id: RowId,
    csrf: Annotated[str, Form(max_length=100)],
    confirm: Annotated[str | None, Form(max_length=8)] = None,
) -> Response:
    """Delete a held original for good (the API's purge)."""
    confirmed = _confirmed(who, csrf, confirm)
    steps.purge(request, ctx, session, state, entry_id, confirmed=confirmed)
    return RedirectResponse(f"{PREFIX}/quarantine/{entry_id}?done=purge", status_code=303)


@router.get("/quarantine/{entry_id}/preview")
def quarantine_preview(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    console: ConsoleDep,
    state: StateDep,
    who: QuarantineAction,
    entry_id: RowId,
) -> Response:
    """The original beside what the profile's pixel step makes of it, for stewards only:
    embedded in the page (no image URL of its own to be cached or shared), sent with
    no-store like every page, and recorded as an access to the instance."""
    pictured, version = steps.preview(request, ctx, session, state, entry_id)
    frames = [
        (frame.frame, base64.b64encode(frame.png).decode("ascii")) for frame in pictured.frames
    ]
    return console.render(
        request,
        "quarantine_preview.html",
        principal=who[0],
        session=who[1],
        entry_id=entry_id,
        outcome=pictured.outcome,
        version=version,
        frames=frames,
    )


# --- audit ----------------------------------------------------------------------------------


def _audit_filter(
    event: str | None,
    actor: str | None,
    object_id: str | None,
    since: str | None,
    until: str | None,
) -> audit.AuditFilter:
    return audit.AuditFilter(
        _blank(event), _blank(actor), _blank(object_id), None, _blank(since), _blank(until)
    )


@router.get("/audit")
def audit_page(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    console: ConsoleDep,
    who: AuditPage,
    event: Text = None,
    actor: Text = None,
    object_id: Annotated[str | None, Query(max_length=128)] = None,
    since: Text = None,
    until: Text = None,
    before_seq: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    verify: Annotated[str | None, Query(max_length=8)] = None,
) -> Response:
    """Events newest first with filters; the chain's verification when asked (a full walk)."""
    flt = _audit_filter(event, actor, object_id, since, until)
    given = (
        {"since": flt.since, "until": flt.until},
        {"event": flt.event_id, "actor": flt.actor, "object_id": flt.object_id},
    )
    ctx.set(
        audit.EventId.AUDIT_LOG_USED,
        audit.Action.READ,
        object_type="audit_log",
        object_id="audit",
        before_seq=before_seq,
        verify=verify == "1",
    )
    report = None
    with unit(request, ctx, session) as work:
        found = audit.search_page(session, flt, before_seq=before_seq, limit=100)
        if verify == "1":
            report = audit.verify(session).as_dict()
            work.note(verdict=report["status"])
        work.note(filters=filters_for_audit(bool(found.items), *given), rows=len(found.items))
    return console.render(
        request,
        "audit.html",
        principal=who[0],
        session=who[1],
        flt=flt,
        rows=found.items,
        next_before_seq=found.next_before_seq,
        report=report,
        query=request.url.query,
    )


@router.get("/audit.csv")
def audit_csv(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    state: StateDep,
    _who: AuditPage,
    event: Text = None,
    actor: Text = None,
    object_id: Annotated[str | None, Query(max_length=128)] = None,
    since: Text = None,
    until: Text = None,
) -> Response:
    """The matching trail as CSV, pinned to the head at the moment of the request."""
    flt = _audit_filter(event, actor, object_id, since, until)
    ctx.set(
        audit.EventId.AUDIT_LOG_USED,
        audit.Action.READ,
        object_type="audit_log",
        object_id="audit",
        format="csv",
    )
    with unit(request, ctx, session) as work:
        head = audit.latest_seq(session)
        flt = dataclasses.replace(flt, to_seq=head)
        work.note(total=audit.count(session, flt), to_seq=head)
        pinned = audit.head_at(session, head)

    def chunks() -> Iterator[str]:
        with state.sessions() as reader:
            yield from audit.iter_export(reader, flt, "csv", state.hostname, head=pinned)

    stream = StreamingResponse(chunks(), media_type=audit.MEDIA_TYPES["csv"])
    stream.headers["Content-Disposition"] = 'attachment; filename="audit.csv"'
    return _no_store(stream)


# --- reports --------------------------------------------------------------------------------


def _report_filter(
    received_from: str | None, received_to: str | None, source: str | None, period: str | None
) -> reports.ReportFilter:
    chosen = _blank(period) or "week"
    if chosen not in reports.PERIODS:
        raise RejectError("period must be day, week or month", code="bad_filter")
    return reports.ReportFilter(
        _blank(received_from),
        _blank(received_to),
        _blank(source),
        chosen,  # type: ignore[arg-type]
    )


def _report_audit(flt: reports.ReportFilter, result: dict[str, Any]) -> dict[str, Any]:
    return filters_for_audit(
        bool(result["by_source"]),
        {"received_from": flt.received_from, "received_to": flt.received_to, "period": flt.period},
        {"source": flt.source},
    )


@router.get("/reports")
def reports_page(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    console: ConsoleDep,
    who: CatalogPage,
    received_from: Text = None,
    received_to: Text = None,
    source: Text = None,
    period: Text = None,
) -> Response:
    """Studies and instances per source and period, per profile version; quarantines per
    reason: who sent what, under which version, and what was held back."""
    if received_from is None and received_to is None:
        # The question as auditors ask it: the last seven days.
        today = now().date()
        received_from = (today - timedelta(days=6)).isoformat()
        received_to = today.isoformat()
    flt = _report_filter(received_from, received_to, source, period)
    ctx.set(audit.EventId.QUERY, audit.Action.EXECUTE, object_type="catalog", object_id="reports")
    with unit(request, ctx, session) as work:
        result = reports.report(session, flt)
        work.note(filters=_report_audit(flt, result))
    return console.render(
        request,
        "reports.html",
        principal=who[0],
        session=who[1],
        flt=flt,
        result=result,
        query=request.url.query
        or f"received_from={flt.received_from}&received_to={flt.received_to}&period={flt.period}",
    )


@router.get("/reports.csv")
def reports_csv(
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    _who: CatalogPage,
    received_from: Text = None,
    received_to: Text = None,
    source: Text = None,
    period: Text = None,
) -> Response:
    flt = _report_filter(received_from, received_to, source, period)
    ctx.set(
        audit.EventId.EXPORT,
        audit.Action.READ,
        object_type="catalog",
        object_id="reports",
        format="csv",
    )
    with unit(request, ctx, session) as work:
        result = reports.report(session, flt)
        work.note(filters=_report_audit(flt, result))
    rows = reports.report_rows(result)
    return _no_store(csv_response(to_csv(rows, reports.REPORT_COLUMNS), "report.csv"))
