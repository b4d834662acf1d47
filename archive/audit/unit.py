"""One audited unit of work for every change and every audited read, over HTTP and on the
command line.

The event is appended in the same transaction as the change it records, so either both are
committed or neither is: a change with no record of it (a PACS allowed, a token minted) can
no longer exist. A refusal (`RejectError`) rolls the change back and is recorded on its own,
as a failure, before it reaches the caller; so a refused approval leaves the same trace
whether it came over HTTP or from the command line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from anonymizer.errors import RejectError
from archive.audit.chain import append
from archive.audit.codes import Outcome
from archive.audit.records import AuditRecord


@dataclasses.dataclass
class Work:
    """What the body of a unit of work may add to its record once it knows it (the id of
    what it created, counts). Ids, codes and counts only: never a value from a dataset."""

    session: Session
    record: AuditRecord
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    object_id: str | None = None

    def note(self, *, object_id: str | None = None, **detail: Any) -> None:
        if object_id is not None:
            self.object_id = object_id
        self.extra.update(detail)

    def final(self, outcome: Outcome, **more: Any) -> AuditRecord:
        return dataclasses.replace(
            self.record,
            outcome=outcome,
            object_id=self.object_id if self.object_id is not None else self.record.object_id,
            detail={**self.record.detail, **self.extra, **more},
        )


@contextmanager
def audited(session: Session, record: AuditRecord) -> Iterator[Work]:
    """Run the body's changes and their audit event as one transaction.

    - The body returns: the event (outcome SUCCESS) is appended and both are committed. If
      the append fails (the chain's head is missing, the database went away), everything
      rolls back and the error propagates (`AuditUnavailable` is a `RetryableError`).
    - The body raises `RejectError`: its changes roll back; the refusal is recorded with
      outcome MINOR_FAILURE and the refusal's code, committed, and the error propagates.
    - Anything else: rolled back, nothing recorded here (the caller's own error handling,
      such as the API's request log, says that something failed).
    """
    work = Work(session, record)
    try:
        yield work
    except RejectError as refusal:
        session.rollback()
        try:
            append(session, work.final(Outcome.MINOR_FAILURE, refused=refusal.code))
            session.commit()
        except BaseException:
            session.rollback()
            raise
        raise
    except BaseException:
        session.rollback()
        raise
    try:
        append(session, work.final(Outcome.SUCCESS))
        session.commit()
    except BaseException:
        session.rollback()
        raise
