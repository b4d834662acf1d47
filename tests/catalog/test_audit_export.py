"""The audit trail's vocabulary, pages and exports: DCM codes as pydicom knows them, keyset
pages without counts, exports that stream and say the same as a whole-log export, and a
DICOM AuditMessage built as XML that survives awkward characters."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydicom.sr.codedict import codes
from sqlalchemy import event, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from amana.cli_catalog import audit_app
from archive import audit
from archive.audit.codes import OBJECT_ID_TYPES
from archive.catalog.csv_rows import to_csv
from archive.catalog.models_governance import AuditEvent, AuditHead

# The codes rows already hold and their hashes cover: these may never change.
STORED_EVENT_IDS = {
    "APPLICATION_ACTIVITY": "110100",
    "AUDIT_LOG_USED": "110101",
    "BEGIN_TRANSFERRING": "110102",
    "INSTANCES_ACCESSED": "110103",
    "INSTANCES_TRANSFERRED": "110104",
    "STUDY_DELETED": "110105",
    "EXPORT": "110106",
    "IMPORT": "110107",
    "NETWORK_ENTRY": "110108",
    "QUERY": "110112",
    "SECURITY_ALERT": "110113",
    "USER_AUTHENTICATION": "110114",
}
STORED_EVENT_TYPES = {
    "APPLICATION_START": "110120",
    "APPLICATION_STOP": "110121",
    "LOGIN": "110122",
    "LOGOUT": "110123",
    "NODE_AUTHENTICATION": "110126",
    "NETWORK_CONFIGURATION": "110128",
    "SECURITY_CONFIGURATION": "110129",
    "SOFTWARE_CONFIGURATION": "110131",
    "USE_OF_RESTRICTED_FUNCTION": "110132",
    "SECURITY_ROLES_CHANGED": "110136",
    "USER_SECURITY_ATTRIBUTES_CHANGED": "110137",
}


def _pydicom_code(value: str) -> Any:
    """The DCM concept pydicom lists under `value` (searched, not assumed by keyword)."""
    found = [code for code in codes.DCM.concepts.values() if code.value == value]
    assert len(found) == 1, value
    return found[0]


# --- vocabulary ---------------------------------------------------------------------------


@pytest.mark.parametrize("member", [*audit.EventId, *audit.EventType], ids=lambda m: m.name)
def test_every_code_is_pydicoms(member: audit.EventId | audit.EventType) -> None:
    """Rule: every event id and event type is a DCM concept with pydicom's value, scheme and
    meaning, and the names readers see are those meanings."""
    reference = _pydicom_code(member.value)
    assert member.code.value == reference.value == member.value
    assert member.code.scheme_designator == reference.scheme_designator == "DCM"
    assert member.meaning == reference.meaning
    names = audit.EVENT_NAMES if isinstance(member, audit.EventId) else audit.EVENT_TYPE_NAMES
    assert names[member.value] == reference.meaning


def test_object_id_type_codes_are_pydicoms() -> None:
    """Rule: the ParticipantObjectIDTypeCodes written in AuditMessages are pydicom's."""
    for code in OBJECT_ID_TYPES.values():
        assert code == _pydicom_code(code.value)
    assert OBJECT_ID_TYPES["study"].meaning == "Study Instance UID"


def test_stored_code_values_never_change() -> None:
    """Rule: the code values stored in rows (and covered by their hashes) stay the same."""
    assert {m.name: m.value for m in audit.EventId} == STORED_EVENT_IDS
    assert {m.name: m.value for m in audit.EventType} == STORED_EVENT_TYPES


def test_event_filter_accepts_code_member_name_and_meaning() -> None:
    """Rule: an event filter may name the event by code, member name or DICOM meaning."""
    for spelling in ("110104", "INSTANCES_TRANSFERRED", "DICOM Instances Transferred"):
        assert audit.event_code(spelling) == "110104"
    assert audit.event_code("no such event") == "no such event"


# --- DICOM AuditMessage -------------------------------------------------------------------

AWKWARD = "a<b>&\"c'\n\r\t]\\d\x01\x1f\ufffe e\u00e9\U0001f600"


def _stored(sessions: sessionmaker[Session], record: audit.AuditRecord) -> AuditEvent:
    audit.record(sessions, record)
    with sessions() as session:
        stored = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert stored is not None
    return stored


def test_audit_message_xml_carries_the_event(sessions: sessionmaker[Session]) -> None:
    """Rule: the AuditMessage is well-formed XML with the event's EventID, EventTypeCode,
    ActiveParticipant, AuditSourceIdentification and ParticipantObjectIdentification."""
    stored = _stored(
        sessions,
        audit.AuditRecord(
            event_id=audit.EventId.SECURITY_ALERT,
            event_type=audit.EventType.NODE_AUTHENTICATION,
            action=audit.Action.EXECUTE,
            outcome=audit.Outcome.MINOR_FAILURE,
            actor="ae:PACS1",
            actor_role="pacs",
            client_address="10.1.2.3",
            object_type="study",
            object_id="2.25.42",
        ),
    )
    root = ET.fromstring(audit.audit_message_xml(stored, "amana@h1"))
    assert root.tag == "AuditMessage"
    ident = root.find("EventIdentification")
    assert ident is not None
    assert ident.attrib == {
        "EventActionCode": "E",
        "EventDateTime": stored.occurred_at,
        "EventOutcomeIndicator": "4",
    }
    event_id = ident.find("EventID")
    assert event_id is not None and event_id.attrib == {
        "csd-code": "110113",
        "codeSystemName": "DCM",
        "originalText": "Security Alert",
    }
    event_type = ident.find("EventTypeCode")
    assert event_type is not None and event_type.get("csd-code") == "110126"
    assert event_type.get("originalText") == "Node Authentication"
    participant = root.find("ActiveParticipant")
    assert participant is not None
    assert participant.get("UserID") == "ae:PACS1"
    assert participant.get("UserIsRequestor") == "true"
    assert participant.get("NetworkAccessPointID") == "10.1.2.3"
    role = participant.find("RoleIDCode")
    assert role is not None and role.get("csd-code") == "pacs"
    source = root.find("AuditSourceIdentification")
    assert source is not None and source.get("AuditSourceID") == "amana@h1"
    obj = root.find("ParticipantObjectIdentification")
    assert obj is not None and obj.get("ParticipantObjectID") == "2.25.42"
    id_type = obj.find("ParticipantObjectIDTypeCode")
    assert id_type is not None
    assert (id_type.get("csd-code"), id_type.get("codeSystemName")) == ("110180", "DCM")


def test_audit_message_escapes_awkward_characters(sessions: sessionmaker[Session]) -> None:
    """Rule: quotes, markup, line breaks and characters XML cannot hold never break the
    message or the syslog line: it parses, stays on one line, and keeps every character XML
    can carry (the others become U+FFFD)."""
    stored = _stored(
        sessions,
        audit.AuditRecord(
            event_id=audit.EventId.QUERY,
            action=audit.Action.EXECUTE,
            actor=AWKWARD,
            client_address=AWKWARD,
            object_type=AWKWARD,
            object_id=AWKWARD,
        ),
    )
    line = audit.to_syslog(stored, hostname="h 1")
    assert "\n" not in line and "\r" not in line
    message = line[line.index("<AuditMessage>") :]
    root = ET.fromstring(message)
    cleaned = AWKWARD.replace("\x01", "\ufffd").replace("\x1f", "\ufffd")
    cleaned = cleaned.replace("\ufffe", "\ufffd")
    participant = root.find("ActiveParticipant")
    assert participant is not None
    assert participant.get("UserID") == cleaned
    assert participant.get("NetworkAccessPointID") == cleaned
    obj = root.find("ParticipantObjectIdentification")
    assert obj is not None and obj.get("ParticipantObjectID") == cleaned
    assert " h_1 amana - DICOM+RFC3881 " in line


# --- keyset pages -------------------------------------------------------------------------


def _fill(sessions: sessionmaker[Session], count: int) -> None:
    """`count` Query events in one transaction (actors alternate so filters have work)."""
    with sessions.begin() as session:
        for n in range(count):
            audit.append(
                session,
                audit.AuditRecord(
                    event_id=audit.EventId.QUERY,
                    action=audit.Action.EXECUTE,
                    actor=f"tok_{n % 2:012d}",
                    actor_role="auditor",
                    client_address="10.0.0.7",
                    object_type="study",
                    object_id=f"2.25.{n}",
                    detail={"n": n},
                ),
            )


@contextmanager
def _statements(sessions: sessionmaker[Session]) -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement (with its parameters) the engine runs while the block runs."""
    with sessions() as probe:
        engine = probe.get_bind()
    assert isinstance(engine, Engine)
    seen: list[tuple[str, Any]] = []

    def listen(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def test_search_pages_walk_newest_first_without_counting(
    sessions: sessionmaker[Session],
) -> None:
    """Rule: keyset pages give every match once, newest first, each page one query with no
    COUNT and no OFFSET, and the last page says there is nothing older."""
    _fill(sessions, 45)
    flt = audit.AuditFilter(actor=f"tok_{1:012d}")
    seqs: list[int] = []
    before: int | None = None
    with sessions() as session:
        with _statements(sessions) as sql:
            while True:
                page = audit.search_page(session, flt, before_seq=before, limit=10)
                seqs.extend(row["seq"] for row in page.items)
                if page.next_before_seq is None:
                    break
                assert page.next_before_seq == page.items[-1]["seq"]
                before = page.next_before_seq
        total, legacy = audit.search(session, flt, limit=1000)
    assert len(seqs) == total == 22 and seqs == sorted(seqs, reverse=True)
    assert seqs == [row["seq"] for row in reversed(legacy)]
    selects = _audit_selects(sql)
    assert len(selects) == math.ceil(22 / 10)
    assert not any("count(" in s.lower() for s in selects)
    # SQLite always writes "LIMIT ? OFFSET ?"; the offset it is given must be 0.
    assert all("OFFSET" not in s for s in selects) or all(
        params[-1] == 0 for s, params in sql if s in selects
    )
    with sessions() as session:
        empty = audit.search_page(session, audit.AuditFilter(actor="nobody"), limit=10)
    assert empty.items == [] and empty.next_before_seq is None


# --- streamed exports ---------------------------------------------------------------------

EVENTS = 2500
PAGE = 500


def _fill_chain(sessions: sessionmaker[Session], count: int) -> None:
    """`count` chained events written in bulk, as `append` would have chained them (one
    append per event costs four statements, too slow for thousands), and the head moved."""
    with sessions.begin() as session:
        prev = audit.GENESIS_HASH
        events = []
        for n in range(1, count + 1):
            row = AuditEvent(
                seq=n,
                occurred_at=f"2026-11-{1 + n % 28:02d}T10:00:00.{n:06d}Z",
                event_id=audit.EventId.QUERY.value,
                event_type=None,
                action="E",
                outcome=0 if n % 7 else 4,
                actor=f"tok_{n % 3:012d}",
                actor_role="auditor",
                client_address="10.0.0.7",
                object_type="study",
                object_id=f"2.25.{n}",
                detail=json.dumps({"n": n}),
                prev_hash=prev,
            )
            row.hash = prev = audit.event_hash(row)
            events.append(row)
        session.add_all(events)
        session.execute(
            update(AuditHead).where(AuditHead.id == 1).values(last_seq=count, last_hash=prev)
        )


def _whole_log(session: Session, fmt: str, hostname: str) -> str:
    """The export as it used to be built: every event loaded, then one string."""
    events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
    if fmt == "csv":
        return to_csv([audit.event_row(e) for e in events], audit.AUDIT_COLUMNS)
    return "".join(audit.to_syslog(e, hostname=hostname) + "\n" for e in events)


def _audit_selects(sql: list[tuple[str, Any]]) -> list[str]:
    return [
        s for s, _ in sql if "FROM audit_events" in s and s.lstrip().upper().startswith("SELECT")
    ]


@pytest.mark.parametrize("fmt", ["csv", "syslog"])
def test_export_streams_in_pages_and_equals_the_whole_log(
    sessions: sessionmaker[Session], fmt: audit.ExportFormat
) -> None:
    """Rule: an export yields its first page before reading the rest, reads in bounded
    keyset pages (never the whole log at once), and writes exactly what an export built
    whole in memory wrote."""
    _fill_chain(sessions, EVENTS)
    with sessions() as session:
        assert audit.verify(session).ok
        expected = _whole_log(session, fmt, "h1")
    with sessions() as session, _statements(sessions) as sql:
        export = audit.iter_export(session, audit.AuditFilter(), fmt, "h1", page_size=PAGE)
        chunks = iter(export)
        first = next(chunks)
        assert len(_audit_selects(sql)) == 1  # one page read so far, not the log
        assert export.rows == PAGE
        rest = []
        for chunk in chunks:
            rest.append(chunk)
            # Events of pages already written are not kept: at most the page in hand.
            assert len(session.identity_map) <= PAGE
        selects = _audit_selects(sql)
    assert export.rows == EVENTS
    assert len(rest) == EVENTS // PAGE - 1
    assert EVENTS // PAGE <= len(selects) <= EVENTS // PAGE + 1
    assert all("LIMIT" in s.upper() for s in selects)
    assert first + "".join(rest) == expected
    flt = audit.AuditFilter(actor=f"tok_{1:012d}", outcome=4, since="2026-11-10")
    with sessions() as session:
        matching = [
            e
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))
            if e.actor == flt.actor and e.outcome == 4 and e.occurred_at >= "2026-11-10"
        ]
        streamed = "".join(audit.iter_export(session, flt, fmt, "h1", page_size=7))
    assert matching and streamed == (
        to_csv([audit.event_row(e) for e in matching], audit.AUDIT_COLUMNS)
        if fmt == "csv"
        else "".join(audit.to_syslog(e, hostname="h1") + "\n" for e in matching)
    )


def test_csv_export_keeps_the_formula_guard_and_an_empty_header(
    sessions: sessionmaker[Session],
) -> None:
    """Rule: streamed CSV pages still neutralise spreadsheet formulas, carry the header
    once, and an export with nothing in it is still a header line."""
    with sessions() as session:
        assert "".join(audit.iter_export(session, audit.AuditFilter(), "csv")) == to_csv(
            [], audit.AUDIT_COLUMNS
        )
    _fill(sessions, 6)
    audit.record(
        sessions,
        audit.AuditRecord(event_id=audit.EventId.QUERY, action=audit.Action.READ, actor="=1+2"),
    )
    with sessions() as session:
        text = "".join(audit.iter_export(session, audit.AuditFilter(), "csv", page_size=3))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["seq"]) for r in rows] == list(range(1, 8))
    assert text.count("seq,occurred_at") == 1
    assert rows[-1]["actor"] == "'=1+2"


# --- command line -------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture()
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return {"AMANA_DATABASE_URL": db_url, "AMANA_HOME": str(tmp_path / "home")}


def test_cli_export_streams_a_snapshot_recorded_before_it_leaves(
    env: dict[str, str], sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: `amana audit export` writes the trail as it stood when it began, equal to the
    whole-log export, and its own Audit Log Used record (committed first) names how many
    events it holds."""
    _fill(sessions, 30)
    with sessions() as session:
        expected = _whole_log(session, "csv", "h1")
    out = tmp_path / "audit.csv"
    result = runner.invoke(
        audit_app, ["export", "--csv", "--out", str(out), "--hostname", "h1"], env=env
    )
    assert result.exit_code == 0, result.output
    # The trail as it stood, then the head it stood at (an anchor for `verify --anchor`).
    *events, head_row = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert out.read_text(encoding="utf-8").startswith(expected)
    assert (head_row["seq"], head_row["event"]) == ("30", audit.HEAD_ROW_EVENT)
    assert head_row["hash"] == events[-1]["hash"]
    with sessions() as session:
        last = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert last is not None and last.seq == 31 and last.event_id == audit.EventId.AUDIT_LOG_USED
    assert json.loads(last.detail) == {
        "via": "cli",
        "rows": 30,
        "to_seq": 30,
        "format": "csv",
    }
    *lines, head = runner.invoke(
        audit_app, ["export", "--hostname", "h1"], env=env
    ).output.splitlines()
    assert 'AMANA-HEAD [amana-head@32473 seq="31" hash="' in head
    assert [re.search(r'seq="(\d+)"', line).group(1) for line in lines] == [  # type: ignore[union-attr]
        str(n) for n in range(1, 32)
    ]


def test_cli_search_pages_with_before(env: dict[str, str], sessions: sessionmaker[Session]) -> None:
    """Rule: `amana audit search` shows the newest events first and names on stderr the
    --before that gives the next, older page; following it reaches the oldest event."""
    _fill(sessions, 5)
    first = runner.invoke(
        audit_app, ["search", "--format", "json", "--limit", "3", "--event", "Query"], env=env
    )
    assert first.exit_code == 0, first.output
    rows = json.loads(first.stdout)
    assert [r["seq"] for r in rows] == [5, 4, 3]
    assert "older events: --before 3" in first.stderr
    second = runner.invoke(
        audit_app,
        ["search", "--format", "json", "--limit", "3", "--event", "Query", "--before", "3"],
        env=env,
    )
    assert [r["seq"] for r in json.loads(second.stdout)] == [2, 1]
    assert "older events" not in second.stderr
