"""A batch's store step, run with no catalog transaction open.

A DICOMweb archive answers when it wants to (a slow or hung archive is bounded only by the
client's timeouts and retries), and a folder's fsyncs can stall on a loaded disk. A catalog
transaction open meanwhile would hold a pooled connection and the row locks it has taken
(patients, studies, the audit chain's head) for as long, stalling every other worker and
the receivers. So the step sits between two transactions: a short read of the instances
the catalog already has (closed before the store is called), the store, then the
transaction that records what the store confirmed (archive/work/pipeline.py, `_commit`).

The order keeps "the catalog says archived only once the archive has it": nothing is
recorded before `put_many` returned. A crash after the store and before the commit leaves
stored instances the catalog does not know; their jobs stay RUNNING, the sweeper sends
them again, and the instance is stored again: both stores keep one copy (the file store
renames the same bytes over the same path; a DICOMweb archive keeps one instance per SOP
Instance UID, and Orthanc answers a second STOW-RS of a UID it holds as stored, tests/
integration/test_store_outside_transaction.py). Nothing is lost, nothing is doubled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy.orm import Session, sessionmaker

from anonymizer.outcome import Outcome
from anonymizer.paths import archive_relpath
from archive.catalog.write import NewInstance, archived_instance_ids
from archive.stores import ArchiveStore


class Unstored(Exception):
    """The commit found an instance to record that this batch has not stored (one archived
    at the lookup and withdrawn before the commit): the batch goes round again, and the
    store step stores it."""


def store_unrecorded(
    sessions: sessionmaker[Session],
    store: ArchiveStore,
    outcomes: Sequence[Outcome],
    written: dict[str, NewInstance],
) -> None:
    """Store the outcomes whose instance the catalog does not have and `written` (what an
    earlier round of this batch stored) does not hold; each one stored is added to
    `written`. Raises ArchiveUnavailable when the store does not confirm."""
    with sessions() as session:
        known = archived_instance_ids(
            session, (outcome.facts.sop_instance_uid for outcome in outcomes)
        )
    # The session is closed here: its connection is back in the pool, no transaction open.
    todo: dict[str, Outcome] = {}
    for outcome in outcomes:
        uid = outcome.facts.sop_instance_uid
        if uid not in known and uid not in written:
            todo.setdefault(uid, outcome)
    if not todo:
        return
    paths = {uid: archive_relpath(outcome.facts) for uid, outcome in todo.items()}
    store.put_many([(paths[uid], outcome.data) for uid, outcome in todo.items()])
    for uid, outcome in todo.items():
        written[uid] = NewInstance(
            facts=outcome.facts,
            archive_path=paths[uid].as_posix(),
            sha256=hashlib.sha256(outcome.data).hexdigest(),
            size_bytes=len(outcome.data),
        )


def stored_items(sop_uids: Sequence[str], written: dict[str, NewInstance]) -> list[NewInstance]:
    """What the commit records for `sop_uids` (the instances it found new); raises Unstored
    when one of them was not stored by this batch."""
    if any(uid not in written for uid in sop_uids):
        raise Unstored
    return [written[uid] for uid in sop_uids]
