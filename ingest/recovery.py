"""Job rows for received instances that have none: the spool is the record.

A receiver answers Success once the instance's file is durable in the spool; its job row
follows (ingest/job_batcher.py). A receiver killed in between, or a catalog that stayed
down until the receiver stopped, leaves files without rows. This scan, run when the
receiver starts and by its sweeper, makes them from what the file names carry
(ingest/spool_names.py), inserting if absent so that it never doubles a row the batcher
made meanwhile.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from archive import audit
from archive.work.jobs import NewJob, create_jobs_if_absent, job_ids_of
from archive.work.publish import enqueue_after_commit
from ingest.spool import Spool
from ingest.spool_names import parse_received

log = logging.getLogger(__name__)

# A file younger than this may still be in its handler's hands (renamed, directory not yet
# flushed, or flushed and its row on the way): left to the batcher. Its mtime is that of
# its last received byte, so this is an age since arrival.
SETTLE_S = 60.0
_CHUNK = 1000


def recover_spool(
    spool: Spool,
    sessions: sessionmaker[Session],
    *,
    node: str | None,
    settle_s: float = SETTLE_S,
    skip: Callable[[], set[str]] = set,
    known: set[str] | None = None,
) -> int:
    """Make the missing job rows of received instances in `spool`, queue them after the
    commit; the number made. `settle_s=0` only while no receiver of this spool runs (at
    start, before it accepts associations). `skip`: names a batcher still holds. `known`:
    names found with a row by an earlier pass, kept up to date here, so that a spool
    holding a backlog is not looked up in the catalog again at every pass."""
    now = time.time()
    found: list[tuple[str, int]] = []
    short: list[str] = []
    with os.scandir(spool.incoming) as entries:
        for entry in entries:
            parsed = parse_received(entry.name)
            if parsed is None:
                continue
            try:
                stat = entry.stat()
            except FileNotFoundError:  # finished meanwhile by a worker
                continue
            if stat.st_size != parsed.size:
                # Renamed in, then cut short by a power cut before its flush: never answered.
                short.append(entry.name)
            elif now - stat.st_mtime >= settle_s:
                found.append((entry.name, stat.st_size))
    if known is not None:
        # Names gone from the spool (finished, quarantined) are forgotten.
        known.intersection_update(name for name, _ in found)
        found = [(name, size) for name, size in found if name not in known]
    if short:
        _remove_short(spool, sessions, short)
    made = 0
    for start in range(0, len(found), _CHUNK):
        chunk = found[start : start + _CHUNK]
        held = skip()
        with sessions.begin() as session:
            rows = job_ids_of(session, [name for name, _ in chunk])
            missing = []
            for name, size in chunk:
                if name in rows or name in held:
                    continue
                parsed = parse_received(name)
                assert parsed is not None
                missing.append(
                    NewJob(name, size, parsed.calling_ae, "dicom", parsed.source_id, node)
                )
            job_ids = create_jobs_if_absent(session, missing)
            enqueue_after_commit(session, job_ids)
            if job_ids:
                _audit_recovered(session, missing, set(job_ids))
        if known is not None:
            known.update(rows)
            known.update(job.spool_name for job in missing)
        made += len(job_ids)
    if made:
        log.warning("made %d job row(s) for received instances the spool held without", made)
    return made


def _audit_recovered(session: Session, jobs: list[NewJob], made: set[int]) -> None:
    # The audit event their association would have had (its address is not known here),
    # one per calling AE title, naming the rows made here (not those a batcher made).
    ids = job_ids_of(session, [job.spool_name for job in jobs])
    by_ae: dict[str | None, list[int]] = {}
    for job in jobs:
        if ids.get(job.spool_name) in made:
            by_ae.setdefault(job.calling_ae, []).append(ids[job.spool_name])
    for calling_ae, job_ids in by_ae.items():
        audit.append(session, audit.instances_received(calling_ae, None, sorted(job_ids)))


def _remove_short(spool: Spool, sessions: sessionmaker[Session], names: list[str]) -> None:
    with sessions.begin() as session:
        known = job_ids_of(session, names)
    # A row means the file was answered and so complete when it was: never remove that one.
    names = [name for name in names if name not in known]
    for name in names:
        spool.discard(name)
    if names:
        log.warning("removed %d incomplete unacknowledged instance(s) from the spool", len(names))
        audit.record(sessions, audit.unacknowledged_instances_removed(len(names)))
