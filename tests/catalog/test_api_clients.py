"""Who the API says called it: failed authentications are limited per client address and
summarised in the trail (issue 14.8), and X-Forwarded-For is believed only from the
configured proxies (issue 14.9), through the API as `amana api` launches it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from archive import audit
from archive.api import create_app
from archive.api.clients import parse_networks, resolve_client
from archive.catalog.models_governance import AuditEvent
from tests.catalog.conftest import mint
from tests.paths import PROFILES_DIR
from tests.support.harness import REPO, Amana
from tests.support.services import wait_port

LIMIT = 10


def _auth_failures(sessions: sessionmaker[Session], client: str) -> list[dict[str, object]]:
    with sessions() as session:
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.event_id == audit.EventId.USER_AUTHENTICATION)
            .where(AuditEvent.client_address == client)
            .order_by(AuditEvent.seq)
        ).all()
    return [json.loads(e.detail) for e in events]


def _requests_counted(details: list[dict[str, object]]) -> int:
    """Requests the events account for: one per event of its own, the counts of summaries."""
    total = 0
    for detail in details:
        if detail.get("aggregated"):
            total += int(str(detail["failed_authentications"])) + int(str(detail["refused_429"]))
        else:
            total += 1
    return total


def _minutes_spanned(start: float, end: float) -> int:
    return int(end // 60) - int(start // 60) + 1


def test_failed_authentications_are_limited_and_summarised(
    sessions: sessionmaker[Session],
) -> None:
    """Rule: 300 bad tokens from one address get 401 up to the limit, then 429 with a
    Retry-After, and leave a couple of audit rows per minute whose counts add up to the 300
    requests, not 300 rows; another address (through a trusted proxy) is not held back."""
    app = create_app(
        sessions,
        profiles_dir=PROFILES_DIR,
        trusted_proxies=["10.9.9.9"],
        auth_failures_per_minute=LIMIT,
    )
    bad = {"Authorization": "Bearer tok_000000000000.not-a-secret"}
    auditor = mint(sessions, "auditor")
    statuses: list[int] = []
    with TestClient(app, client=("10.9.9.9", 40000)) as client:
        start = time.time()
        for _ in range(300):
            answer = client.get("/studies", headers={**bad, "X-Forwarded-For": "192.0.2.7"})
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert 1 <= int(answer.headers["Retry-After"]) <= 60
        end = time.time()
        other = client.get(
            "/studies",
            headers={"Authorization": f"Bearer {auditor}", "X-Forwarded-For": "192.0.2.8"},
        )
        assert other.status_code == 200
    # Leaving the client ran the app's shutdown, which writes the summaries still pending.
    spanned = _minutes_spanned(start, end)
    assert statuses[0] == 401 and set(statuses) == {401, 429}
    assert statuses.count(401) <= LIMIT * spanned
    details = _auth_failures(sessions, "192.0.2.7")
    assert len(details) <= 2 * spanned
    assert _requests_counted(details) == 300
    summaries = [d for d in details if d.get("aggregated")]
    assert summaries and all(d["token_ids"] == ["tok_000000000000"] for d in summaries)
    with sessions() as session:
        assert audit.verify(session, anchor_file=None).ok


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    """Rule: the peer's own address unless the peer is a trusted proxy; then the rightmost
    forwarded address that is not a trusted proxy; garbage in the chain is not believed."""
    proxies = parse_networks(["10.0.0.0/8", "::1"])
    assert resolve_client("203.0.113.5", "192.0.2.1", proxies) == "203.0.113.5"
    assert resolve_client("10.1.2.3", "192.0.2.1", proxies) == "192.0.2.1"
    assert resolve_client("10.1.2.3", "198.51.100.9, 192.0.2.1, 10.4.4.4", proxies) == "192.0.2.1"
    assert resolve_client("::1", "2001:db8::5", proxies) == "2001:db8::5"
    assert resolve_client("10.1.2.3", "not-an-address", proxies) == "10.1.2.3"
    assert resolve_client("127.0.0.1", "192.0.2.1", ()) == "127.0.0.1"


@pytest.fixture()
def api_home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _serve_api(home: Path, db_url: str, **env: str) -> Iterator[Amana]:
    amana = Amana(home, AMANA_DATABASE_URL=db_url, **env)
    home.mkdir(parents=True, exist_ok=True)
    with amana.log_path.open("ab") as log:
        amana.proc = subprocess.Popen(
            [sys.executable, "-m", "amana.cli", "api"],
            env=amana.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    try:
        wait_port("127.0.0.1", amana.api_port, timeout=90)
        yield amana
    finally:
        amana.proc.send_signal(signal.SIGTERM)
        try:
            amana.proc.wait(30)
        except subprocess.TimeoutExpired:
            amana.proc.kill()
            amana.proc.wait()


def _audited_address(sessions: sessionmaker[Session], token_id: str) -> str | None:
    with sessions() as session:
        return session.scalars(
            select(AuditEvent.client_address)
            .where(AuditEvent.actor == token_id)
            .order_by(AuditEvent.seq.desc())
        ).first()


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [("", "127.0.0.1"), ("127.0.0.1", "192.0.2.44"), ("10.0.0.0/8", "127.0.0.1")],
)
def test_forwarded_for_through_the_launched_api(
    sessions: sessionmaker[Session], db_url: str, api_home: Path, trusted: str, expected: str
) -> None:
    """Rule: `amana api` records the peer's address (127.0.0.1 here) whatever
    X-Forwarded-For says, unless the peer is in AMANA_TRUSTED_PROXIES; uvicorn's own
    default trust of 127.0.0.1 is not in force."""
    token = mint(sessions, "auditor")
    env = {"AMANA_TRUSTED_PROXIES": trusted} if trusted else {}
    for amana in _serve_api(api_home, db_url, **env):
        answer = httpx.get(
            f"http://127.0.0.1:{amana.api_port}/studies",
            headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": "192.0.2.44"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    assert _audited_address(sessions, token.partition(".")[0]) == expected
