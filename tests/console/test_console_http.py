"""The console's rules over HTTP (httpx TestClient against real SQLite and PostgreSQL
catalogs): the session cookie, CSRF, roles, the audit trail of page views, the catalogs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from archive import audit
from archive.api import create_app
from archive.catalog.models import QuarantineEntry, QuarantineStatus
from archive.catalog.models_governance import AuditEvent
from archive.console.session import SESSION_LIFETIME
from tests.catalog.conftest import mint
from tests.console.conftest import Seeded, seed
from tests.paths import PROFILES_DIR, REPO_ROOT

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
CONSOLE = REPO_ROOT / "archive" / "console"


@pytest.fixture()
def seeded(sessions: sessionmaker[Session], tmp_path: Path) -> Seeded:
    return seed(sessions, tmp_path / "quarantine")


def _app(sessions: sessionmaker[Session], tmp_path: Path) -> object:
    return create_app(
        sessions,
        profiles_dir=PROFILES_DIR,
        quarantine_dir=tmp_path / "quarantine",
        spool_dir=tmp_path / "spool",
    )


@pytest.fixture()
def client(sessions: sessionmaker[Session], tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(_app(sessions, tmp_path)) as c:  # type: ignore[arg-type]
        yield c


def sign_in(client: TestClient, token: str) -> str:
    """Signs in through the form; returns the page's CSRF token."""
    form = client.get("/console/login")
    answer = client.post(
        "/console/login",
        data={"token": token, "csrf": CSRF.search(form.text).group(1)},  # type: ignore[union-attr]
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    page = client.get("/console/")  # every role's first page carries the sign-out form
    found = CSRF.search(page.text)
    assert found is not None
    return found.group(1)


def _events(sessions: sessionmaker[Session]) -> list[AuditEvent]:
    with sessions() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def test_session_cookie_flags(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """Rule: the session cookie is HttpOnly, SameSite=Strict, scoped to /console, expires,
    and is Secure when the console is reached over HTTPS."""
    token = mint(sessions, "auditor")
    for base, secure in (("http://testserver", False), ("https://testserver", True)):
        with TestClient(_app(sessions, tmp_path), base_url=base) as client:  # type: ignore[arg-type]
            form = client.get("/console/login")
            answer = client.post(
                "/console/login",
                data={"token": token, "csrf": CSRF.search(form.text).group(1)},  # type: ignore[union-attr]
                follow_redirects=False,
            )
        cookie = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith("amana_session=")
        )
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert "httponly" in flags and "samesite=strict" in flags and "path=/console" in flags
        assert f"max-age={int(SESSION_LIFETIME.total_seconds())}" in flags
        assert ("secure" in flags) is secure
        assert token not in answer.text


def test_wrong_token_refused_and_recorded(
    sessions: sessionmaker[Session], client: TestClient
) -> None:
    """Rule: a refused sign-in answers 401 and leaves a failed User Authentication event."""
    form = client.get("/console/login")
    before = len(_events(sessions))
    answer = client.post(
        "/console/login",
        data={"token": "tok_0123456789ab.wrong", "csrf": CSRF.search(form.text).group(1)},  # type: ignore[union-attr]
    )
    assert answer.status_code == 401
    assert "amana_session" not in answer.headers.get("set-cookie", "")
    failed = _events(sessions)[before:]
    assert [(e.event_id, e.outcome) for e in failed] == [
        (audit.EventId.USER_AUTHENTICATION.value, audit.Outcome.MINOR_FAILURE.value)
    ]
    assert failed[0].actor == "tok_0123456789ab"


def test_forms_without_csrf_change_nothing(
    sessions: sessionmaker[Session], seeded: Seeded, client: TestClient
) -> None:
    """Rule: a steward's action without the page's CSRF token (a forged cross-site form) is
    refused and the entry stays HELD; with it, the retry happens."""
    sign_in(client, mint(sessions, "steward"))
    entry = seeded.entries[0]
    for forged in ("", "0" * 40, "é" * 40):
        answer = client.post(
            f"/console/quarantine/{entry}/retry", data={"csrf": forged, "confirm": "yes"}
        )
        assert answer.status_code in (403, 422)
    with sessions() as session:
        assert session.get_one(QuarantineEntry, entry).status is QuarantineStatus.HELD
    csrf = CSRF.search(client.get(f"/console/quarantine/{entry}").text).group(1)  # type: ignore[union-attr]
    unconfirmed = client.post(f"/console/quarantine/{entry}/retry", data={"csrf": csrf})
    assert unconfirmed.status_code == 422
    done = client.post(f"/console/quarantine/{entry}/retry", data={"csrf": csrf, "confirm": "yes"})
    assert done.status_code == 200 and 'id="done"' in done.text
    with sessions() as session:
        assert session.get_one(QuarantineEntry, entry).status is QuarantineStatus.RETRIED


def test_roles_are_checked_and_refusals_recorded(
    sessions: sessionmaker[Session], seeded: Seeded, client: TestClient
) -> None:
    """Rule: a page outside the user's role answers 403 and leaves a Security Alert; an
    auditor cannot act on the quarantine."""
    sign_in(client, mint(sessions, "steward"))
    before = len(_events(sessions))
    for path in ("/console/studies", "/console/reports", "/console/audit"):
        assert client.get(path).status_code == 403
    alerts = _events(sessions)[before:]
    assert [e.event_id for e in alerts] == [audit.EventId.SECURITY_ALERT.value] * 3
    client.cookies.clear()
    csrf = sign_in(client, mint(sessions, "auditor"))
    answer = client.post(
        f"/console/quarantine/{seeded.entries[0]}/purge", data={"csrf": csrf, "confirm": "yes"}
    )
    assert answer.status_code == 403
    with sessions() as session:
        held = session.get_one(QuarantineEntry, seeded.entries[0])
        assert held.status is QuarantineStatus.HELD


def test_every_page_view_is_recorded(
    sessions: sessionmaker[Session], seeded: Seeded, client: TestClient
) -> None:
    """Rule: each page an auditor opens leaves exactly one event naming their token."""
    token = mint(sessions, "auditor")
    sign_in(client, token)
    token_id = token.partition(".")[0]
    pages = [
        "/console/",
        "/console/studies?source=CHU_RABAT",
        "/console/studies/2.25.101",
        "/console/studies.csv",
        "/console/quarantine",
        f"/console/quarantine/{seeded.entries[0]}",
        "/console/audit?verify=1",
        "/console/reports?period=week&received_from=2026-11-23&received_to=2026-11-29",
        "/console/reports.csv?period=month",
        "/console/profiles",
        "/console/sources",
        "/console/users",
        "/console/static/console.css",
    ]
    for path in pages:
        before = len(_events(sessions))
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text)
        new = _events(sessions)[before:]
        if path.startswith("/console/static/"):
            assert new == []  # the stylesheet is the same for all and not a read of data
        else:
            assert [e.actor for e in new] == [token_id], path
            assert answer.headers["cache-control"] == "no-store"
    report = client.get(
        "/console/reports?period=week&received_from=2026-11-23&received_to=2026-11-29"
    )
    assert "CHU_RABAT (CHU Rabat)" in report.text and "2026-W48" in report.text


def test_admin_sees_sources_and_users_not_the_catalog(
    sessions: sessionmaker[Session], seeded: Seeded, client: TestClient
) -> None:
    """Rule: separation of duties holds in the console: an admin lists sources and users
    but opens no catalog page."""
    sign_in(client, mint(sessions, "admin"))
    menu = client.get("/console/")
    assert 'href="/console/sources"' in menu.text and 'href="/console/studies"' not in menu.text
    assert "CHU_RABAT" in client.get("/console/sources").text
    assert client.get("/console/users").status_code == 200
    for path in ("/console/studies", "/console/reports", "/console/quarantine"):
        assert client.get(path).status_code == 403, path


def _msgids(text: str) -> set[str]:
    return {m.group(2) for m in re.finditer(r"""_\((["'])(.+?)\1\)""", text)}


def test_every_template_string_is_translated() -> None:
    """Rule: no string is hard-coded in a template: every message a template shows through
    `_()` has a French and an Arabic translation, and the templates hold no other text
    outside markup than names and symbols."""
    wanted: set[str] = set()
    for template in (CONSOLE / "templates").glob("*.html"):
        wanted |= _msgids(template.read_text(encoding="utf-8"))
    assert len(wanted) > 50
    for code in ("fr", "ar"):
        with (CONSOLE / "locales" / code / "LC_MESSAGES" / "messages.po").open("rb") as po:
            catalog = read_po(po, locale=code)
        translated = {m.id for m in catalog if m.id and m.string}
        assert wanted <= translated, (code, sorted(wanted - translated))


def test_language_from_browser_and_switch(
    sessions: sessionmaker[Session], client: TestClient
) -> None:
    """Rule: the browser's language is used, the switch overrides it and is remembered;
    Arabic pages are right to left."""
    page = client.get("/console/login", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"})
    assert '<html lang="fr" dir="ltr">' in page.text and "Se connecter" in page.text
    switched = client.get("/console/login?lang=ar", headers={"Accept-Language": "fr"})
    assert '<html lang="ar" dir="rtl">' in switched.text and "تسجيل الدخول" in switched.text
    remembered = client.get("/console/login", headers={"Accept-Language": "fr"})
    assert '<html lang="ar" dir="rtl">' in remembered.text
