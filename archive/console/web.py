"""What every console page depends on: the signed-in user, the language, rendering, CSRF.

Pages check permissions exactly as the API does (the same Permission of the same Principal)
and record themselves through the API's audited unit of work (archive.api.deps.unit), so a
page view is in the trail like the API call it mirrors.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from anonymizer.errors import RejectError
from archive.api.deps import AuditDep, SessionDep
from archive.console.i18n import LANG_COOKIE, LANGUAGES, Language, load_languages, negotiate
from archive.console.session import SESSION_COOKIE, ConsoleSession, find_session
from archive.governance.auth import (
    AuthError,
    ForbiddenError,
    Permission,
    Principal,
    principal_of_token_id,
)

PREFIX = "/console"


class NotSignedIn(RejectError):
    """No valid session cookie: the page answers with the sign-in form."""

    def __init__(self) -> None:
        super().__init__("sign in first", code="unauthenticated")


class ConsoleForbidden(ForbiddenError):
    """A signed-in user without the page's permission: an HTML 403 page."""


class BadCsrf(RejectError):
    def __init__(self) -> None:
        super().__init__("the form has expired: reload the page", code="forbidden")


class Console:
    """Templates and catalogs, loaded once per app."""

    def __init__(self) -> None:
        folder = resources.files("archive.console") / "templates"
        self.env = Environment(
            loader=FileSystemLoader(str(folder)),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.languages = load_languages()

    def language(self, request: Request) -> Language:
        code = negotiate(
            request.query_params.get("lang") or request.cookies.get(LANG_COOKIE),
            request.headers.get("accept-language"),
        )
        return self.languages[code]

    def render(
        self,
        request: Request,
        template: str,
        *,
        status_code: int = 200,
        principal: Principal | None = None,
        session: ConsoleSession | None = None,
        **context: Any,
    ) -> HTMLResponse:
        lang = self.language(request)
        html = self.env.get_template(template).render(
            _=lang.gettext,
            lang=lang,
            languages=LANGUAGES,
            prefix=PREFIX,
            path=request.url.path,
            principal=principal,
            can=(lambda p: principal is not None and principal.can(Permission(p))),
            csrf=session.csrf if session else context.pop("csrf", ""),
            **context,
        )
        response = HTMLResponse(html, status_code=status_code)
        # Pages show catalog data (and stewards' previews): nothing is kept by the browser.
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        picked = request.query_params.get("lang")
        if picked in LANGUAGES:
            response.set_cookie(
                LANG_COOKIE,
                picked,
                max_age=365 * 86400,
                samesite="strict",
                httponly=True,
                secure=request.url.scheme == "https",
                path=PREFIX,
            )
        return response


def console_of(request: Request) -> Console:
    return cast(Console, request.app.state.console)


ConsoleDep = Annotated[Console, Depends(console_of)]


def now() -> datetime:
    return datetime.now(UTC)


def _signed_in(
    request: Request, ctx: AuditDep, session: SessionDep
) -> tuple[Principal, ConsoleSession]:
    console_session = find_session(session, request.cookies.get(SESSION_COOKIE), now())
    if console_session is None:
        raise NotSignedIn()
    ctx.presented_token_id = console_session.token_id
    try:
        principal = principal_of_token_id(session, console_session.token_id)
    except AuthError as exc:
        # Revoked, expired or disabled since sign-in: back to the form.
        raise NotSignedIn() from exc
    ctx.principal = principal
    return principal, console_session


SignedIn = Annotated[tuple[Principal, ConsoleSession], Depends(_signed_in)]


def page(permission: Permission | None) -> Callable[..., tuple[Principal, ConsoleSession]]:
    def check(who: SignedIn) -> tuple[Principal, ConsoleSession]:
        if permission is not None and not who[0].can(permission):
            raise ConsoleForbidden(f"role {who[0].role.value} may not {permission.value}")
        return who

    return check


def require_csrf(console_session: ConsoleSession, presented: str | None) -> None:
    if not console_session.csrf_ok(presented):
        raise BadCsrf()
