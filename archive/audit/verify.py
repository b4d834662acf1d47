"""Checking the trail: the chain row by row, its head, the anchor outside the database and
the catalog's job count. Always a report, never an exception.

What each status means:

- `intact`: every link holds, the head row names the last event, the anchor file's head is
  in the log with the same hash (it may lag the head after a crash between a commit and its
  anchor write: that is a note, not a problem).
- `truncated`: events at the end are gone: the anchor (or the head row) records a sequence
  number the log no longer reaches, or the catalog holds jobs while the trail is empty.
- `broken`: a row was changed, deleted in the middle, inserted or reordered, the head row
  was deleted or changed, or the anchored event no longer has its anchored hash.
- `anchor_missing`: the chain holds, but the anchor file is gone or unreadable, so a cut at
  the end could not be ruled out.
- `unreadable`: the database could not be read (tables dropped, connection lost).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from archive.audit.anchor import Anchor, anchor_path, read_anchor
from archive.audit.chain import GENESIS_HASH, HEAD_ID, event_hash
from archive.catalog.models import Job
from archive.catalog.models_governance import AuditEvent, AuditHead


class Status(StrEnum):
    INTACT = "intact"
    TRUNCATED = "truncated"
    BROKEN = "broken"
    ANCHOR_MISSING = "anchor_missing"
    UNREADABLE = "unreadable"


# When problems of several kinds are found, the report's status is the first of these.
_SEVERITY = (Status.UNREADABLE, Status.TRUNCATED, Status.BROKEN, Status.ANCHOR_MISSING)


@dataclass(frozen=True)
class Problem:
    seq: int
    row_id: int | None
    reason: str
    kind: Status = Status.BROKEN

    def __str__(self) -> str:
        where = f"seq {self.seq}" + (f" (row id {self.row_id})" if self.row_id is not None else "")
        return f"audit event {where}: {self.reason}"


@dataclass
class VerifyReport:
    checked: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    last_seq: int = 0
    anchor_file: str | None = None
    anchor_seq: int | None = None
    anchor_hash: str | None = None
    jobs: int | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> Status:
        kinds = {p.kind for p in self.problems}
        return next((kind for kind in _SEVERITY if kind in kinds), Status.INTACT)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: Status, seq: int, reason: str, row_id: int | None = None) -> None:
        self.problems.append(Problem(seq, row_id, reason, kind))

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "ok": self.ok,
            "checked": self.checked,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "last_seq": self.last_seq,
            "anchor_file": self.anchor_file,
            "anchor_seq": self.anchor_seq,
            "anchor_hash": self.anchor_hash,
            "jobs": self.jobs,
            "problems": [
                {"seq": p.seq, "row_id": p.row_id, "reason": p.reason, "kind": p.kind.value}
                for p in self.problems
            ],
            "notes": list(self.notes),
        }


_UNSET = object()


def verify(
    session: Session,
    *,
    anchor: tuple[int, str] | None = None,
    anchor_file: Path | None | object = _UNSET,
    max_problems: int = 100,
) -> VerifyReport:
    """Walk the chain in order and report every row that breaks it, then compare its end
    with the head row, the anchor file and the catalog's jobs.

    `anchor` is a (seq, hash) pair an auditor noted earlier outside the database (from an
    export's head line, say). `anchor_file` defaults to the file the session's sessionmaker
    anchors to (`attach_anchor`); None checks no file.
    """
    report = VerifyReport()
    path = anchor_path(session) if anchor_file is _UNSET else anchor_file
    try:
        _walk(session, report, anchor, max_problems)
        _check_end(session, report)
        _check_jobs(session, report)
        if isinstance(path, Path):
            _check_anchor_file(session, report, path)
        else:
            report.notes.append(
                "no anchor file configured: a cut at the end is found only "
                "by the head row and the job count"
            )
    except SQLAlchemyError as exc:
        session.rollback()
        report.add(
            Status.UNREADABLE,
            0,
            f"the audit trail could not be read ({type(exc).__name__}): tables dropped or "
            "the database unreachable",
        )
    return report


def _walk(
    session: Session, report: VerifyReport, anchor: tuple[int, str] | None, max_problems: int
) -> None:
    head = session.execute(
        select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == HEAD_ID)
    ).first()
    if head is None:
        report.head_seq, report.head_hash = -1, ""
        report.add(Status.BROKEN, 0, "the audit head row was deleted")
    else:
        report.head_seq, report.head_hash = head
    expected_seq = 1
    prev_hash = GENESIS_HASH
    anchor_seen = anchor is None
    rows = session.scalars(
        select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=1000)
    )
    for event in rows:
        report.checked += 1
        if event.seq != expected_seq:
            if event.seq > expected_seq:
                missing = (
                    f"seq {expected_seq}"
                    if event.seq == expected_seq + 1
                    else f"seq {expected_seq} to {event.seq - 1}"
                )
                reason = f"events before it are missing ({missing}): rows were deleted"
            else:
                reason = f"out of order: expected seq {expected_seq}"
            report.add(Status.BROKEN, event.seq, reason, event.id)
        if event_hash(event) != event.hash:
            report.add(
                Status.BROKEN,
                event.seq,
                "content changed: it no longer matches its hash",
                event.id,
            )
        if event.prev_hash != prev_hash:
            report.add(
                Status.BROKEN,
                event.seq,
                "chain broken: its previous-hash is not the hash of the event before it "
                "(a row before it was changed, deleted, inserted or reordered)",
                event.id,
            )
        if anchor is not None and event.seq == anchor[0]:
            anchor_seen = True
            if event.hash != anchor[1]:
                report.add(
                    Status.BROKEN, event.seq, "hash differs from the anchor noted earlier", event.id
                )
        expected_seq = event.seq + 1
        prev_hash = event.hash
        if len(report.problems) >= max_problems:
            rows.close()
            report.notes.append(f"stopped after {max_problems} problems")
            break
    if not anchor_seen and anchor is not None:
        report.add(
            Status.TRUNCATED,
            anchor[0],
            "the event noted earlier no longer exists: it and the events after it were deleted",
        )


def _check_end(session: Session, report: VerifyReport) -> None:
    last = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    last_seq, last_hash = last if last is not None else (0, GENESIS_HASH)
    report.last_seq = last_seq
    if report.head_seq < 0:
        return  # the head row is gone: already reported
    if report.head_seq > last_seq:
        report.add(
            Status.TRUNCATED,
            report.head_seq,
            f"the head row records seq {report.head_seq}, the log ends at seq {last_seq}: "
            f"events {last_seq + 1} to {report.head_seq} were deleted",
        )
    elif report.head_seq != last_seq or report.head_hash != last_hash:
        report.add(
            Status.BROKEN,
            report.head_seq,
            f"the head row records seq {report.head_seq}, the log ends at seq {last_seq} with "
            "another hash: the head row or the last events were changed",
        )


def _check_anchor_file(session: Session, report: VerifyReport, path: Path) -> None:
    report.anchor_file = str(path)
    try:
        found: Anchor | None = read_anchor(path)
    except OSError as exc:
        report.add(
            Status.ANCHOR_MISSING,
            0,
            f"the anchor file cannot be read ({type(exc).__name__}): a cut at the end cannot "
            "be ruled out",
        )
        return
    if found is None or found.seq == 0:
        if found is None and report.last_seq == 0 and report.head_seq == 0 and not report.jobs:
            return  # a new catalog: nothing appended, nothing to anchor yet
        what = "does not exist" if found is None else "holds no readable head"
        report.add(
            Status.ANCHOR_MISSING,
            0,
            f"the anchor file {what}: the end of the trail cannot be checked against it",
        )
        return
    report.anchor_seq, report.anchor_hash = found.seq, found.hash
    if found.unreadable:
        report.notes.append(f"{found.unreadable} unreadable anchor line(s) skipped")
    if found.seq > report.last_seq:
        gone = (
            f"events {report.last_seq + 1} to {found.seq}"
            if found.seq > report.last_seq + 1
            else f"event {found.seq}"
        )
        report.add(
            Status.TRUNCATED,
            found.seq,
            f"the anchor file records seq {found.seq}, the log ends at seq {report.last_seq}: "
            f"{gone} were deleted",
        )
        return
    stored = session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == found.seq))
    if stored is None:
        report.add(
            Status.BROKEN, found.seq, "the anchored event no longer exists: rows were deleted"
        )
    elif stored != found.hash:
        report.add(
            Status.BROKEN,
            found.seq,
            "the anchored event no longer has its anchored hash: the trail was rewritten",
        )
    elif found.seq < report.last_seq:
        report.notes.append(
            f"the anchor lags the log by {report.last_seq - found.seq} event(s) (a crash "
            "between a commit and its anchor write, or an appender without the anchor); the "
            "next append anchors them"
        )


def _check_jobs(session: Session, report: VerifyReport) -> None:
    jobs = session.scalar(select(func.count()).select_from(Job)) or 0
    report.jobs = jobs
    if jobs and report.checked == 0:
        # Every job was received and handled under audit: jobs with no event at all means
        # the trail was emptied, whatever the head row says.
        report.add(
            Status.TRUNCATED,
            0,
            f"the catalog holds {jobs} job(s) but the trail holds no event: it was emptied",
        )
