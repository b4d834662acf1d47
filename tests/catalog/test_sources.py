"""Registered sources: only a known AE title from its registered address may associate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from archive.catalog.db import make_engine, make_sessionmaker
from archive.catalog.models_governance import AuditEvent
from archive.governance.sources import SourceGate, add_source, check_source
from tests.support.services import free_port


def test_check_source_rules(sessions: sessionmaker[Session]) -> None:
    """Rule: with sources registered, the AE title must be known and the peer address inside
    its registered network; with none registered, only the embedded mode lets anyone in."""
    with sessions.begin() as session:
        assert check_source(session, "ANY", "10.0.0.1", open_when_empty=True).allowed
        assert not check_source(session, "ANY", "10.0.0.1", open_when_empty=False).allowed
        add_source(session, ae_title="CHU_RABAT", address="10.20.0.0/16")
    with sessions() as session:
        assert check_source(session, "CHU_RABAT", "10.20.3.4", open_when_empty=True).allowed
        assert check_source(session, "CHU_RABAT", "::ffff:10.20.3.4", open_when_empty=True).allowed
        wrong_net = check_source(session, "CHU_RABAT", "10.21.0.1", open_when_empty=True)
        assert not wrong_net.allowed and "address" in wrong_net.reason
        unknown = check_source(session, "OTHER", "10.20.3.4", open_when_empty=True)
        assert not unknown.allowed and "AE title" in unknown.reason


@pytest.fixture()
def gated_scp(sessions: sessionmaker[Session]) -> Iterator[int]:
    """A real pynetdicom SCP whose EVT_REQUESTED handler asks the SourceGate (the recipe the
    receiver uses)."""
    gate = SourceGate(sessions, open_when_empty=False)

    def on_requested(event: Any) -> None:
        requestor = event.assoc.requestor
        decision = gate.check(requestor.primitive.calling_ae_title, requestor.address)
        if not decision.allowed:
            # rejected-permanent / transient, by the service user, calling AE not recognised
            event.assoc.acse.send_reject(0x02 if decision.transient else 0x01, 0x01, 0x03)
            # As pynetdicom does for its own rejections: let the DUL send the PDU, then stop;
            # without it the socket may close first and the PACS sees an abort.
            event.assoc.kill()

    ae = AE(ae_title="AMANA")
    ae.add_supported_context(Verification)
    port = free_port()
    server = ae.start_server(
        ("127.0.0.1", port),
        block=False,
        evt_handlers=[(evt.EVT_REQUESTED, on_requested), (evt.EVT_C_ECHO, lambda _e: 0x0000)],
    )
    yield port
    server.shutdown()


def _echo(port: int, calling: str) -> tuple[bool, bool]:
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="AMANA")
    established, rejected = assoc.is_established, assoc.is_rejected
    if established:
        assoc.release()
    return established, rejected


def test_unregistered_pacs_is_rejected_and_audited(
    sessions: sessionmaker[Session], gated_scp: int
) -> None:
    """Rule: a real association from an unregistered AE title (or address) is rejected at
    A-ASSOCIATE and leaves a Security Alert; a registered one is accepted."""
    with sessions.begin() as session:
        add_source(session, ae_title="CHU_FES", address="127.0.0.1")
        add_source(session, ae_title="CHU_FAR", address="10.9.9.9")
    assert _echo(gated_scp, "CHU_FES") == (True, False)
    assert _echo(gated_scp, "INTRUDER") == (False, True)
    assert _echo(gated_scp, "CHU_FAR") == (False, True)
    with sessions() as session:
        alerts = session.scalars(
            select(AuditEvent).where(AuditEvent.event_id == "110113").order_by(AuditEvent.seq)
        ).all()
    assert [(a.actor, a.event_type, a.outcome) for a in alerts] == [
        ("ae:INTRUDER", "110126", 4),
        ("ae:CHU_FAR", "110126", 4),
    ]
    assert alerts[1].client_address == "127.0.0.1"


def test_a_catalog_outage_admits_only_whom_the_catalog_let_in(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: while the catalog is unreachable the gate lets in again (with its source, so
    its jobs keep their profile) a peer the catalog let in shortly before, and nobody else:
    not a peer it refused, not one it never saw, not one let in too long ago."""
    with sessions.begin() as session:
        add_source(session, ae_title="CHU_RABAT", address="10.20.0.0/16")
        add_source(session, ae_title="CHU_FES", address="10.30.0.0/16")
    gate = SourceGate(sessions, open_when_empty=False)
    allowed = gate.check("CHU_RABAT", "10.20.3.4")
    assert allowed.allowed and allowed.source_id is not None
    assert not gate.check("CHU_RABAT", "10.99.0.1").allowed
    # The same gate, its catalog gone (a database file that cannot be opened).
    gate.sessions = make_sessionmaker(make_engine(f"sqlite:///{tmp_path}/missing/catalog.db"))
    again = gate.check("CHU_RABAT", "10.20.3.4")
    assert again.allowed and again.source_id == allowed.source_id
    refused = gate.check("CHU_RABAT", "10.99.0.1")
    assert not refused.allowed and refused.transient
    never_seen = gate.check("CHU_FES", "10.30.0.1")
    assert not never_seen.allowed and never_seen.transient
    gate.remember_s = 0.0
    assert not gate.check("CHU_RABAT", "10.20.3.4").allowed
