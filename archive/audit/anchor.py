"""The head of the chain, anchored outside the database.

The hash chain alone cannot see its own end cut off: delete the newest rows and rewind the
head row (or empty the table and reset the head) and what is left is a perfect chain. So
every process that appends also writes the head it committed to an append-only file, and
`verify` compares the two.

- One line per committed transaction that appended events (not per event: a worker commits
  a batch of events at once), written after the commit: `seq hash time\\n`, well under
  PIPE_BUF, with one `write` on an `O_APPEND` descriptor, then `fsync`. Appenders in several
  processes never interleave inside a line; their lines may land out of order, so the anchor
  is the highest sequence number in the file, not the last line.
- Written after the commit, the anchor can only be behind the database (a crash between the
  commit and the write), never ahead of it. An anchor ahead of the head, or a head that no
  longer has the anchored hash at the anchored sequence number, means rows were taken away
  or rewritten.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

_PENDING = "amana.audit_head_pending"
_ANCHOR = "amana.audit_anchor_file"
_LINE = re.compile(r"^(\d{1,19}) ([0-9a-f]{64})(?: \S+)?$")


@dataclass(frozen=True)
class Anchor:
    """What the anchor file says: the highest anchored head, and lines it could not read."""

    seq: int
    hash: str
    lines: int
    unreadable: int


def attach_anchor(sessions: sessionmaker[Session], path: Path) -> None:
    """Make every session of `sessions` write the audit head it committed to `path`."""
    sessions.kw.setdefault("info", {})[_ANCHOR] = path
    if not event.contains(sessions, "after_commit", _after_commit):
        event.listen(sessions, "after_commit", _after_commit)
        event.listen(sessions, "after_rollback", _after_rollback)


def anchor_path(session: Session) -> Path | None:
    """The anchor file the session's sessionmaker writes to (None: not anchored)."""
    path = session.info.get(_ANCHOR)
    return path if isinstance(path, Path) else None


def note_head(session: Session, seq: int, digest: str) -> None:
    """Called by `append`: the head this transaction will have committed."""
    pending = session.info.get(_PENDING)
    if pending is None or pending[0] < seq:
        session.info[_PENDING] = (seq, digest)


def write_anchor(path: Path, seq: int, digest: str) -> None:
    """Append one line and fsync it: one `write` on O_APPEND, so concurrent appenders'
    lines stay whole."""
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    line = f"{seq} {digest} {when}\n".encode("ascii")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_anchor(path: Path) -> Anchor | None:
    """The highest anchored head in `path`; None when the file does not exist."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    best_seq, best_hash, lines, unreadable = 0, "", 0, 0
    for raw in text.splitlines():
        if not raw.strip():
            continue
        lines += 1
        match = _LINE.match(raw.strip())
        if match is None:
            # A torn last line after a crash mid-write, or an edit: counted, never fatal.
            unreadable += 1
            continue
        seq = int(match.group(1))
        if seq > best_seq:
            best_seq, best_hash = seq, match.group(2)
    return Anchor(best_seq, best_hash, lines, unreadable)


def _after_commit(session: Session) -> None:
    pending: tuple[int, str] | None = session.info.pop(_PENDING, None)
    path = anchor_path(session)
    if pending is None or path is None:
        return
    try:
        write_anchor(path, *pending)
    except OSError as exc:
        # Committed is committed: the anchor stays behind the head, which `verify` reports
        # as the anchor lagging (never as intact-and-anchored) until a later commit catches up.
        log.error("audit anchor not written (%s): it lags the head", type(exc).__name__)


def _after_rollback(session: Session, *_args: Any) -> None:
    session.info.pop(_PENDING, None)
