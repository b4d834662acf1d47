"""A trail cut at the end is found: the head is anchored outside the database, and
`verify` (library, command line, HTTP) compares the chain, its head row, the anchor file and
the catalog's job count, and always ends with a report."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from amana.cli_catalog import audit_app
from archive import audit
from archive.api import create_app
from archive.catalog.models_governance import AuditEvent, AuditHead
from tests.catalog.conftest import add_instance, mint
from tests.paths import PROFILES_DIR


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture()
def anchor_file(home: Path) -> Path:
    # Where `amana` puts it by default (AMANA_HOME/audit-anchor.log), so the command line
    # below reads the file these sessions write.
    return home / "audit-anchor.log"


@pytest.fixture()
def anchored(sessions: sessionmaker[Session], anchor_file: Path) -> sessionmaker[Session]:
    audit.attach_anchor(sessions, anchor_file)
    return sessions


@pytest.fixture()
def env(db_url: str, home: Path) -> dict[str, str]:
    return {"AMANA_DATABASE_URL": db_url, "AMANA_HOME": str(home)}


def _query(n: int) -> audit.AuditRecord:
    return audit.AuditRecord(
        event_id=audit.EventId.QUERY,
        action=audit.Action.EXECUTE,
        actor=f"tok_{n:012d}",
        object_type="study",
        object_id=f"2.25.{n}",
    )


def _fill(sessions: sessionmaker[Session], count: int) -> None:
    for n in range(count):
        audit.record(sessions, _query(n))


def _hash_at(sessions: sessionmaker[Session], seq: int) -> str:
    with sessions() as session:
        return session.scalars(select(AuditEvent.hash).where(AuditEvent.seq == seq)).one()


def _set_head(sessions: sessionmaker[Session], seq: int, digest: str) -> None:
    with sessions.begin() as session:
        session.execute(
            update(AuditHead).where(AuditHead.id == 1).values(last_seq=seq, last_hash=digest)
        )


def _verify(sessions: sessionmaker[Session]) -> audit.VerifyReport:
    with sessions() as session:
        return audit.verify(session)


def _cli_verify(env: dict[str, str], code: int) -> str:
    result = CliRunner().invoke(audit_app, ["verify"], env=env)
    # A report and an exit status, never a traceback.
    assert isinstance(result.exception, SystemExit) or result.exception is None, result.output
    assert result.exit_code == code, result.output
    return result.output


def test_every_commit_that_appends_anchors_the_head(
    anchored: sessionmaker[Session], anchor_file: Path
) -> None:
    """Rule: after each committed append the anchor file holds the head (seq and hash), in
    a file only its owner reads; a rolled-back append anchors nothing."""
    _fill(anchored, 3)
    found = audit.read_anchor(anchor_file)
    assert found is not None and (found.seq, found.hash) == (3, _hash_at(anchored, 3))
    assert found.lines == 3 and found.unreadable == 0
    assert anchor_file.stat().st_mode & 0o077 == 0
    with anchored() as session:
        audit.append(session, _query(99))
        session.rollback()
    assert audit.read_anchor(anchor_file) == found
    report = _verify(anchored)
    assert report.status is audit.Status.INTACT and report.anchor_seq == 3, report.problems


def test_deleting_the_last_rows_and_rewinding_the_head_is_truncation(
    anchored: sessionmaker[Session], env: dict[str, str]
) -> None:
    """Rule (issue 14.5): delete the newest events and rewind the head row to the last one
    left: the chain alone looks perfect, the anchor says where it ended; `verify` reports
    truncated with the sequence numbers, on the command line too (exit 1)."""
    _fill(anchored, 6)
    with anchored.begin() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq >= 5))
    _set_head(anchored, 4, _hash_at(anchored, 4))
    report = _verify(anchored)
    assert report.status is audit.Status.TRUNCATED
    assert [(p.kind, p.seq) for p in report.problems] == [(audit.Status.TRUNCATED, 6)]
    assert "events 5 to 6 were deleted" in report.problems[0].reason
    out = _cli_verify(env, 1)
    assert "audit trail TRUNCATED" in out and "events 5 to 6 were deleted" in out


def test_emptying_the_trail_and_resetting_the_head_is_truncation(
    anchored: sessionmaker[Session], env: dict[str, str], anchor_file: Path
) -> None:
    """Rule (issue 14.5): delete every event and reset the head to the genesis: reported
    truncated by the anchor, and still by the catalog's jobs when the anchor file went too."""
    add_instance(anchored, study="2.25.1", series="2.25.1.1", sop="2.25.1.1.1")
    _fill(anchored, 4)
    with anchored.begin() as session:
        session.execute(delete(AuditEvent))
    _set_head(anchored, 0, audit.GENESIS_HASH)
    report = _verify(anchored)
    assert report.status is audit.Status.TRUNCATED and report.checked == 0
    assert any("seq 4, the log ends at seq 0" in p.reason for p in report.problems)
    saved = anchor_file.read_bytes()
    anchor_file.unlink()
    report = _verify(anchored)
    assert report.status is audit.Status.TRUNCATED
    assert {p.kind for p in report.problems} == {
        audit.Status.TRUNCATED,  # 1 job, no event
        audit.Status.ANCHOR_MISSING,
    }
    anchor_file.write_bytes(saved)
    assert "TRUNCATED" in _cli_verify(env, 1)


def test_deleting_events_and_head_gives_a_report_not_a_traceback(
    anchored: sessionmaker[Session], env: dict[str, str]
) -> None:
    """Rule (issue 14.5): with the events and the head row deleted, `verify` still ends
    with a report, on the command line (exit 1) and over HTTP (200, marked not recorded,
    since the trail refuses every append without its head)."""
    auditor = mint(anchored, "auditor")
    _fill(anchored, 3)
    with anchored.begin() as session:
        session.execute(delete(AuditEvent))
        session.execute(delete(AuditHead))
    report = _verify(anchored)
    assert report.status is audit.Status.TRUNCATED
    kinds = {p.kind for p in report.problems}
    assert kinds == {audit.Status.TRUNCATED, audit.Status.BROKEN}  # anchor ahead; head gone
    out = _cli_verify(env, 1)
    assert "head row was deleted" in out and "could not be recorded" in out
    with TestClient(create_app(anchored, profiles_dir=PROFILES_DIR)) as client:
        answer = client.get("/audit/verify", headers={"Authorization": f"Bearer {auditor}"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "truncated" and body["recorded"] is False
    assert body["anchor_seq"] == 3 and body["checked"] == 0


def test_a_missing_anchor_file_is_reported(
    anchored: sessionmaker[Session], env: dict[str, str], anchor_file: Path
) -> None:
    """Rule: an intact chain whose anchor file is gone is not called intact: the end of
    the trail could not be checked."""
    _fill(anchored, 2)
    anchor_file.unlink()
    report = _verify(anchored)
    assert report.status is audit.Status.ANCHOR_MISSING
    assert "ANCHOR_MISSING" in _cli_verify(env, 1)


def test_a_rewritten_chain_no_longer_matches_its_anchor(
    anchored: sessionmaker[Session],
) -> None:
    """Rule: a chain recomputed from the first row (every link consistent again) is caught
    by the anchored hash."""
    _fill(anchored, 3)
    with anchored.begin() as session:
        prev = audit.GENESIS_HASH
        for event in session.scalars(select(AuditEvent).order_by(AuditEvent.seq)):
            event.actor = "someone-else"
            event.prev_hash = prev
            event.hash = prev = audit.event_hash(event)
    _set_head(anchored, 3, prev)
    report = _verify(anchored)
    assert report.status is audit.Status.BROKEN
    assert [p.seq for p in report.problems] == [3] and "rewritten" in report.problems[0].reason


def test_an_anchor_behind_the_head_is_a_note_not_a_problem(
    anchored: sessionmaker[Session], db_url: str
) -> None:
    """Rule: the anchor is written after the commit, so a crash between the two leaves it
    behind the head; that is intact (with a note), and the next anchored commit catches up."""
    from archive.catalog.db import make_engine, make_sessionmaker

    _fill(anchored, 2)
    engine = make_engine(db_url)
    try:
        # An appender whose anchor write never happened (as after a crash).
        _fill(make_sessionmaker(engine), 3)
    finally:
        engine.dispose()
    report = _verify(anchored)
    assert report.status is audit.Status.INTACT and report.anchor_seq == 2
    assert any("lags the log by 3" in note for note in report.notes)
    _fill(anchored, 1)
    report = _verify(anchored)
    assert report.anchor_seq == report.head_seq == 6 and not report.notes


def _append_anchored(url: str, anchor_file: str, worker: int, count: int) -> None:
    from archive.catalog.db import make_engine, make_sessionmaker

    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    audit.attach_anchor(sessions, Path(anchor_file))
    for n in range(count):
        audit.record(sessions, _query(worker * 1000 + n))
    engine.dispose()


def test_appenders_in_several_processes_keep_every_anchor_line_whole(
    anchored: sessionmaker[Session], db_url: str, anchor_file: Path
) -> None:
    """Rule: processes appending at once write whole anchor lines (O_APPEND, one write
    each), one per commit, and the highest is the head."""
    spawn = multiprocessing.get_context("spawn")
    processes = [
        spawn.Process(target=_append_anchored, args=(db_url, str(anchor_file), w, 15))
        for w in range(3)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    found = audit.read_anchor(anchor_file)
    assert found is not None and found.lines == 45 and found.unreadable == 0
    report = _verify(anchored)
    assert report.status is audit.Status.INTACT, report.problems
    assert report.anchor_seq == report.head_seq == 45
