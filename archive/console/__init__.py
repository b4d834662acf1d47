"""The web console: server-rendered pages for administrators, stewards and auditors, served
by the API process under /console (no CDN, no build chain, no script of a third party)."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from archive.console.admin import router as admin_router
from archive.console.api_docs import install_api_docs
from archive.console.pages import router
from archive.console.profiles import router as profiles_router
from archive.console.web import PREFIX, BadCsrf, Console, ConsoleForbidden, NotSignedIn

STATIC_PREFIX = f"{PREFIX}/static/"


def install_console(app: FastAPI) -> None:
    console = Console()
    app.state.console = console
    app.include_router(router)
    app.include_router(profiles_router)
    app.include_router(admin_router)
    folder = resources.files("archive.console") / "static"
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(folder)), name="console-static")
    install_api_docs(app)

    @app.exception_handler(NotSignedIn)
    async def sign_in_first(_request: Request, _exc: NotSignedIn) -> Response:
        return RedirectResponse(f"{PREFIX}/login", status_code=303)

    @app.exception_handler(ConsoleForbidden)
    async def forbidden(request: Request, _exc: ConsoleForbidden) -> Response:
        return console.render(
            request, "error.html", status_code=403, message="Your role may not open this page."
        )

    @app.exception_handler(BadCsrf)
    async def bad_csrf(request: Request, _exc: BadCsrf) -> Response:
        return console.render(
            request,
            "error.html",
            status_code=403,
            message="The form has expired: please try again.",
        )


__all__ = ["STATIC_PREFIX", "install_console"]
