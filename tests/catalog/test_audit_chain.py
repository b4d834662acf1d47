"""The audit trail is hash-chained: any changed, deleted or reordered row is found and named."""

from __future__ import annotations

import re
import threading

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from archive import audit
from archive.catalog.models_governance import AuditEvent


def _query(actor: str, n: int) -> audit.AuditRecord:
    return audit.AuditRecord(
        event_id=audit.EventId.QUERY,
        action=audit.Action.EXECUTE,
        actor=actor,
        actor_role="auditor",
        client_address="10.0.0.7",
        object_type="study",
        object_id=f"2.25.{n}",
        detail={"n": n},
    )


def _fill(sessions: sessionmaker[Session], count: int) -> None:
    for n in range(count):
        audit.record(sessions, _query("tok_000000000001", n))


def _verify(sessions: sessionmaker[Session]) -> audit.VerifyReport:
    with sessions() as session:
        return audit.verify(session)


def test_untouched_log_verifies(sessions: sessionmaker[Session]) -> None:
    """Rule: an untouched chain verifies, and its head names the last event."""
    assert _verify(sessions).ok  # an empty log too
    _fill(sessions, 5)
    report = _verify(sessions)
    assert report.ok, report.problems
    assert (report.checked, report.head_seq) == (5, 5)


def test_update_is_found_and_named(sessions: sessionmaker[Session]) -> None:
    """Rule: `verify` fails after a direct UPDATE and names the changed row."""
    _fill(sessions, 6)
    with sessions.begin() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(actor="someone"))
    report = _verify(sessions)
    assert not report.ok
    assert report.problems[0].seq == 3
    assert "changed" in str(report.problems[0])


def test_update_with_recomputed_hash_breaks_the_next_link(
    sessions: sessionmaker[Session],
) -> None:
    """Rule: rewriting a row together with its own hash is still caught at the next row."""
    _fill(sessions, 4)
    with sessions.begin() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.seq == 2)).one()
        event.object_id = "2.25.999"
        event.hash = audit.event_hash(event)
    report = _verify(sessions)
    assert [p.seq for p in report.problems] == [3]
    assert "chain broken" in report.problems[0].reason


def test_delete_is_found_and_named(sessions: sessionmaker[Session]) -> None:
    """Rule: `verify` fails after a direct DELETE and names where the rows went missing."""
    _fill(sessions, 6)
    with sessions.begin() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 4))
    report = _verify(sessions)
    assert not report.ok
    assert report.problems[0].seq == 5
    assert "seq 4" in report.problems[0].reason


def test_delete_of_the_last_rows_is_found(sessions: sessionmaker[Session]) -> None:
    """Rule: deleting the newest events (nothing after them to break) is still found."""
    _fill(sessions, 5)
    with sessions.begin() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq >= 4))
    report = _verify(sessions)
    assert not report.ok
    assert "seq 5" in str(report.problems[-1]) and "ends at seq 3" in str(report.problems[-1])


def test_reordering_is_found(sessions: sessionmaker[Session]) -> None:
    """Rule: swapping the positions of two rows is found."""
    _fill(sessions, 5)
    with sessions.begin() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(seq=-2))
        session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(seq=2))
        session.execute(update(AuditEvent).where(AuditEvent.seq == -2).values(seq=3))
    report = _verify(sessions)
    assert {p.seq for p in report.problems} >= {2, 3}


def test_anchor_catches_a_rewritten_chain(sessions: sessionmaker[Session]) -> None:
    """Rule: a (seq, hash) noted outside the database catches a fully recomputed chain."""
    _fill(sessions, 3)
    with sessions() as session:
        anchor = (2, session.scalars(select(AuditEvent.hash).where(AuditEvent.seq == 2)).one())
    with sessions.begin() as session:
        prev = audit.GENESIS_HASH
        for event in session.scalars(select(AuditEvent).order_by(AuditEvent.seq)):
            event.detail = '{"n":0}'
            event.prev_hash = prev
            event.hash = prev = audit.event_hash(event)
        session.execute(text("UPDATE audit_head SET last_hash = :h"), {"h": prev})
    with sessions() as session:
        assert audit.verify(session).ok  # the chain alone cannot tell
        report = audit.verify(session, anchor=anchor)
    assert [p.seq for p in report.problems] == [2]


def test_concurrent_appends_form_one_chain(sessions: sessionmaker[Session]) -> None:
    """Rule: several writers appending at once still produce one unbroken chain."""
    writers, each = 6, 15
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for n in range(each):
                audit.record(sessions, _query(f"worker-{worker}", n))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    report = _verify(sessions)
    assert report.ok, report.problems
    assert report.checked == writers * each
    with sessions() as session:
        seqs = session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)).all()
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == writers * each
    assert list(seqs) == list(range(1, writers * each + 1))


def test_append_commits_with_the_callers_transaction(sessions: sessionmaker[Session]) -> None:
    """Rule: an event appended in a transaction that rolls back leaves no trace and no gap."""
    with sessions() as session:
        audit.append(session, _query("a", 1))
        session.rollback()
    audit.record(sessions, _query("b", 2))
    report = _verify(sessions)
    assert report.ok and report.checked == 1


SYSLOG = re.compile(
    r"^<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\S+) amana - DICOM\+RFC3881 "
    r"\[amana@32473 seq=\"(\d+)\" event=\"(\d+)\" .*hash=\"([0-9a-f]{64})\" "
    r"prev=\"[0-9a-f]{64}\"\] "
    r"(<AuditMessage>.*</AuditMessage>)$"
)


def test_syslog_export_is_rfc5424_with_a_dicom_audit_message(
    sessions: sessionmaker[Session],
) -> None:
    """Rule: events export as RFC 5424 lines carrying the PS3.15 A.5 AuditMessage."""
    import xml.etree.ElementTree as ET

    audit.record(sessions, _query('tok_"quoted"]', 7))
    with sessions() as session:
        event = session.scalars(select(AuditEvent)).one()
    line = audit.to_syslog(event, hostname="archive-1")
    match = SYSLOG.match(line)
    assert match, line
    assert int(match.group(1)) == 13 * 8 + 6
    assert match.group(5) == "110112" and match.group(6) == event.hash
    assert '\\"quoted\\"\\]' in line  # SD-PARAM escaping
    root = ET.fromstring(match.group(7))
    ident = root.find("EventIdentification")
    assert ident is not None and ident.get("EventActionCode") == "E"
    assert root.find("EventIdentification/EventID").get("csd-code") == "110112"  # type: ignore[union-attr]
    obj = root.find("ParticipantObjectIdentification")
    assert obj is not None and obj.get("ParticipantObjectID") == "2.25.7"
    assert "\n" not in line


def _append_in_process(url: str, worker: int, count: int) -> None:
    from archive.catalog.db import make_engine, make_sessionmaker

    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    for n in range(count):
        audit.record(sessions, _query(f"process-{worker}", n))
    engine.dispose()


def test_appends_from_several_processes_form_one_chain(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    """Rule: worker processes appending at the same time (separate engines, as in
    production) still produce one unbroken chain with no gaps."""
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=_append_in_process, args=(db_url, w, 20)) for w in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    report = _verify(sessions)
    assert report.ok, report.problems
    assert report.checked == report.head_seq == 60


def test_a_deleted_head_stops_recording_and_is_reported(sessions: sessionmaker[Session]) -> None:
    """Rule: if the head row is deleted, nothing starts a new chain silently: appends fail
    (so the API answers 503) and verify reports it."""
    import pytest

    _fill(sessions, 2)
    with sessions.begin() as session:
        session.execute(text("DELETE FROM audit_head"))
    with pytest.raises(audit.AuditUnavailable):
        audit.record(sessions, _query("x", 1))
    report = _verify(sessions)
    assert not report.ok and "head row was deleted" in str(report.problems[0])
