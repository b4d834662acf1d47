"""Jobs, start to finish: spool -> de-identify -> archive file -> catalog -> spool cleared.

A task carries a small batch of job ids. Each job is claimed, read and de-identified on its
own, and what goes wrong with one (a missing file, a decoder that blows up) is that job's
alone. The instances that come out clean are cataloged together: one lookup of what is
already archived, then one transaction that records them all, marks their jobs DONE and
appends one audit event per study, so a batch costs about as many round trips as one job.
That is the only way a job is committed: one job is a batch of one. A batch that loses a
race to another worker (the same instance, patient, study or series committed after its
lookup) is rolled back whole and tried again, and the new lookup finds the winner's rows.

Every step can be repeated after a crash: the engine is deterministic, the archive store
keeps one copy per instance (atomic renames of identical bytes, or one instance per SOP
Instance UID in a DICOMweb archive), and the catalog refuses a second row for the same
instance. So a batch run twice ends exactly as a batch run once.

The store confirms before the commit (archive/stores/), and is called with no catalog
transaction open (archive/work/storing.py): a slow archive holds no connection and no
row lock. When it cannot (a DICOMweb archive
down), the batch's jobs go back to RECEIVED, their attempt not counted, for the sweeper to
send again: a store outage costs time, never an instance.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.engine import Deidentifier, SampledSlice
from anonymizer.errors import QuarantineError, QuarantineReason
from anonymizer.outcome import Outcome
from archive import audit
from archive.catalog.models import Job, JobStatus, QuarantineEntry, QuarantineStatus
from archive.catalog.write import NewInstance, archived_instance_ids, record_instances
from archive.fsio import durable_move
from archive.governance.watcher import ProfileRegistry
from archive.stores import ArchiveStore, ArchiveUnavailable
from archive.stores.file import FileStore
from archive.work import sampling
from archive.work.attribution import UNATTRIBUTED, SourceTerms, engine_for, source_terms
from archive.work.jobs import (
    Claim,
    claim_many,
    defer_attempts,
    renew_claims,
    start_attempt,
    utcnow,
)
from archive.work.reexamine import reexamine_archived
from archive.work.storing import Unstored, store_unrecorded, stored_items

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# De-identified instances wait in memory for their batch's commit. Past this many bytes the
# batch commits early: held outputs must not push a job over the worker's address-space
# limit, where its MemoryError would quarantine an instance that has nothing wrong with it.
BATCH_BYTES = 64 * 1024 * 1024


class JobResult(StrEnum):
    ARCHIVED = "archived"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    SKIPPED = "skipped"
    # The archive store did not confirm: back to RECEIVED, for the sweeper to send again.
    RETRY = "retry"
    # A slice of a sampled series, spooled and waiting for its series' decision.
    HELD = "held"


@dataclass
class WorkerContext:
    sessions: sessionmaker[Session]
    deidentifier: Deidentifier
    spool_dir: Path
    archive_dir: Path
    quarantine_dir: Path
    stale_after: timedelta
    # Profiles by name, for jobs whose source names a profile other than the default one
    # (`deidentifier`, AMANA_PROFILE's). Without it such jobs are quarantined, never run
    # under the wrong profile.
    profiles: ProfileRegistry | None = None
    # Where de-identified instances go (AMANA_ARCHIVE_URL); None: the folder archive_dir.
    store: ArchiveStore | None = None

    def archive(self) -> ArchiveStore:
        return self.store if self.store is not None else FileStore(self.archive_dir)
    # The ingest node whose spool `spool_dir` is: only its jobs are claimed (None, for tools
    # and tests running jobs in-process: any job).
    node: str | None = None


@dataclass(frozen=True, eq=False)
class _Ready:
    """A job whose instance was de-identified cleanly, waiting for its catalog commit."""

    job_id: int
    spool_path: Path
    outcome: Outcome
    # The claim's mark: a job handed back after a store outage only while still ours.
    claimed_at: datetime

    @property
    def sop_uid(self) -> str:
        return self.outcome.facts.sop_instance_uid


def process_job(ctx: WorkerContext, job_id: int) -> JobResult:
    return process_jobs(ctx, [job_id])[job_id]


def process_jobs(ctx: WorkerContext, job_ids: Sequence[int]) -> dict[int, JobResult]:
    """Run a batch of jobs; every id given gets a result (SKIPPED: not ours to run)."""
    ids = list(dict.fromkeys(int(job_id) for job_id in job_ids))
    results = dict.fromkeys(ids, JobResult.SKIPPED)
    together, alone = _claim(ctx, ids)
    terms = source_terms(ctx.sessions, [*together, *alone])
    results.update(_run_together(ctx, together, terms))
    for held in alone:
        results[held.job_id] = _run_alone(ctx, held, terms)
    return results


def _claim(ctx: WorkerContext, ids: Sequence[int]) -> tuple[list[Claim], list[Claim]]:
    """Claim the batch in one statement; returns the jobs to run together and those to run
    one at a time."""
    with ctx.sessions.begin() as session:
        claims = claim_many(session, ids, stale_after=ctx.stale_after, node=ctx.node)
        if len(claims) < 2:
            return claims, []
        # A job claimed before and never finished may have killed the worker running its
        # batch, and its batch-mates were claimed along with it. Such jobs run one at a time
        # and their attempt is counted only when each one starts, so only the job that
        # kills workers ever reaches MAX_ATTEMPTS (worker_lost).
        retried = [claim for claim in claims if claim.attempt > 1]
        defer_attempts(session, retried)
    return [claim for claim in claims if claim.attempt == 1], retried


def _run_together(
    ctx: WorkerContext, claims: Sequence[Claim], terms: Mapping[int, SourceTerms]
) -> dict[int, JobResult]:
    claims, results = _place_sampled(ctx, claims, terms)
    held = _HeldClaims(ctx, claims)
    pending: list[_Ready] = []
    for claim in claims:
        held.renew_if_due()
        current = held.claims.get(claim.job_id)
        if current is None:  # another worker took it over meanwhile
            results[claim.job_id] = JobResult.SKIPPED
            continue
        prepared = _prepare(ctx, current, terms)
        if isinstance(prepared, JobResult):
            results[claim.job_id] = prepared
            held.release([claim.job_id])
            continue
        pending.append(prepared)
        if sum(len(ready.outcome.data) for ready in pending) >= BATCH_BYTES:
            results.update(_archive(ctx, pending))
            held.release([ready.job_id for ready in pending])
            pending = []
    results.update(_archive(ctx, pending))
    return results


class _HeldClaims:
    """The claims of a batch not finished yet, renewed as the batch goes once they are a
    quarter of the stale timeout old: the sweeper re-sends a job whose claim went stale,
    and another worker would run the rest of a long batch a second time."""

    def __init__(self, ctx: WorkerContext, claims: Sequence[Claim]) -> None:
        self._ctx = ctx
        self.claims = {claim.job_id: claim for claim in claims}

    def renew_if_due(self) -> None:
        if not self.claims:
            return
        oldest = min(claim.claimed_at for claim in self.claims.values())
        if utcnow() - oldest < self._ctx.stale_after / 4:
            return
        with self._ctx.sessions.begin() as session:
            kept = renew_claims(session, list(self.claims.values()))
        self.claims = {claim.job_id: claim for claim in kept}

    def release(self, job_ids: Sequence[int]) -> None:
        for job_id in job_ids:
            self.claims.pop(job_id, None)


def _run_alone(ctx: WorkerContext, held: Claim, terms: Mapping[int, SourceTerms]) -> JobResult:
    with ctx.sessions.begin() as session:
        claim = start_attempt(session, held)
    if claim is None:
        return JobResult.SKIPPED
    prepared = _prepare(ctx, claim, terms)
    if isinstance(prepared, JobResult):
        return prepared
    return _archive(ctx, [prepared])[claim.job_id]


def _prepare(
    ctx: WorkerContext, claim: Claim, terms: Mapping[int, SourceTerms]
) -> _Ready | JobResult:
    """De-identify one claimed job's instance under its source's profile, or quarantine the
    job."""
    if claim.pixel_mode == sampling.REEXAMINE:
        return _reexamine(ctx, claim, terms)
    spool_path = ctx.spool_dir / "incoming" / claim.spool_name
    held_path = ctx.quarantine_dir / claim.spool_name
    if not spool_path.exists() and held_path.exists():
        # A crash between moving to quarantine and committing that decision: the move was
        # never recorded, so undo it and decide again.
        durable_move(held_path, spool_path, mode=0o600)
    if not spool_path.exists():
        # Cannot happen unless someone removed the file: record it loudly, never silently.
        return _finish_quarantine(
            ctx,
            claim.job_id,
            claim.spool_name,
            QuarantineError(QuarantineReason.PROCESSING_ERROR, "spooled file is missing"),
            None,
        )
    if claim.attempt > MAX_ATTEMPTS:
        # Each earlier attempt was claimed and never finished: this input kills workers.
        error = QuarantineError(
            QuarantineReason.WORKER_LOST,
            f"processing never finished in {MAX_ATTEMPTS} attempts (worker lost)",
        )
        return _quarantine(ctx, claim.job_id, claim.spool_name, error)
    source = UNATTRIBUTED if claim.source_id is None else terms.get(claim.source_id)
    # A source removed since the claim: its jobs were refused removal while pending, so
    # this is a race with a removal; the default terms are what an unattributed job gets.
    source = source or UNATTRIBUTED
    engine = engine_for(ctx.deidentifier, ctx.profiles, source.profile_name)
    if isinstance(engine, QuarantineError):
        return _quarantine(ctx, claim.job_id, claim.spool_name, engine)
    data = spool_path.read_bytes()
    mode = _pixel_mode(ctx, claim, engine, data)
    if isinstance(mode, JobResult):
        return mode
    outcome = _deidentify(engine, data, mode)
    if isinstance(outcome, QuarantineError):
        return _quarantine(ctx, claim.job_id, claim.spool_name, outcome)
    if source.region is not None:
        # The registered source knows where it is; the header's institution may not.
        outcome = Outcome(outcome.data, dataclasses.replace(outcome.facts, region=source.region))
    return _Ready(claim.job_id, spool_path, outcome, claim.claimed_at)


def _reexamine(ctx: WorkerContext, claim: Claim, terms: Mapping[int, SourceTerms]) -> JobResult:
    """An archived slice of a series that showed text later: its archived file is the input
    (archive/work/reexamine.py), under its source's profile."""
    source = UNATTRIBUTED if claim.source_id is None else terms.get(claim.source_id)
    engine = engine_for(ctx.deidentifier, ctx.profiles, (source or UNATTRIBUTED).profile_name)
    if isinstance(engine, QuarantineError):
        engine = ctx.deidentifier  # the default profile's pixel policy examines as well
    give_up = None
    if claim.attempt > MAX_ATTEMPTS:
        give_up = QuarantineError(
            QuarantineReason.WORKER_LOST,
            f"re-examination never finished in {MAX_ATTEMPTS} attempts (worker lost)",
        )
    try:
        done = reexamine_archived(
            ctx.sessions, claim, engine, ctx.archive(), ctx.quarantine_dir, give_up=give_up
        )
    except ArchiveUnavailable as exc:
        return _give_back(ctx, [(claim.job_id, claim.claimed_at)], exc)[claim.job_id]
    return JobResult(done)


def _place_sampled(
    ctx: WorkerContext, claims: Sequence[Claim], terms: Mapping[int, SourceTerms]
) -> tuple[list[Claim], dict[int, JobResult]]:
    """The batch's slices of sampled series held or given their mode in one transaction
    (archive/work/sampling.py); returns the claims to run now, each knowing its mode, and
    the results of those held (or taken over meanwhile). A header only is read here:
    anything odd about a job is left for `_prepare` to find and report."""
    found: list[tuple[Claim, SampledSlice]] = []
    modes: dict[int, str] = {}
    for claim in claims:
        if claim.pixel_mode is not None or claim.attempt > MAX_ATTEMPTS:
            continue
        spool_path = ctx.spool_dir / "incoming" / claim.spool_name
        source = UNATTRIBUTED if claim.source_id is None else terms.get(claim.source_id)
        engine = engine_for(ctx.deidentifier, ctx.profiles, (source or UNATTRIBUTED).profile_name)
        if isinstance(engine, QuarantineError) or not spool_path.exists():
            continue
        if not engine.samples_series:
            modes[claim.job_id] = "auto"
            continue
        sampled = engine.sampled_slice(spool_path.read_bytes())
        if sampled is None:
            modes[claim.job_id] = "auto"
        else:
            found.append((claim, sampled))
    results: dict[int, JobResult] = {}
    if found:
        with ctx.sessions.begin() as session:
            placed = sampling.place(session, found)
        for job_id, where in placed.items():
            if where == "held":
                results[job_id] = JobResult.HELD
            elif where == "lost":
                results[job_id] = JobResult.SKIPPED
            else:
                modes[job_id] = where.value
    run = [
        dataclasses.replace(claim, pixel_mode=modes.get(claim.job_id, claim.pixel_mode))
        for claim in claims
        if claim.job_id not in results
    ]
    return run, results


def _pixel_mode(
    ctx: WorkerContext, claim: Claim, engine: Deidentifier, data: bytes
) -> str | JobResult:
    """What the instance's series asks of the pixel step (archive/work/sampling.py), or
    HELD when it waits for its series' decision (SKIPPED: the job is no longer ours)."""
    if claim.pixel_mode is not None:
        return claim.pixel_mode
    sampled = engine.sampled_slice(data)
    if sampled is None:
        return "auto"
    with ctx.sessions.begin() as session:
        placed = sampling.place(session, [(claim, sampled)])[claim.job_id]
    if placed == "held":
        return JobResult.HELD
    if placed == "lost":
        return JobResult.SKIPPED
    return placed


def _deidentify(engine: Deidentifier, data: bytes, mode: str = "auto") -> Outcome | QuarantineError:
    try:
        if mode == "auto":
            return engine.deidentify(data)
        return engine.deidentify(data, pixel_mode=mode)
    except QuarantineError as exc:
        return exc
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: B036 - a native decoder's panic is not an Exception
        # A decoder that blows up is contained to its job.
        return QuarantineError(
            QuarantineReason.PROCESSING_ERROR,
            f"de-identification failed with {type(exc).__name__}",
        )


# --- the catalog commit -------------------------------------------------------------------

# Tries of a batch's catalog transaction. A try fails when another worker committed one of
# the batch's instances, or the same patient, study or series, after this try looked them
# up; the next try looks again and finds the winner's rows. Losing again needs yet another
# worker to commit in that short window, so the bound only ends a loop on an integrity
# error that is not such a race (the jobs then stay RUNNING for the sweeper).
COMMIT_TRIES = 5


def _archive(ctx: WorkerContext, batch: Sequence[_Ready]) -> dict[int, JobResult]:
    """Archive files (stored first, outside any transaction), then catalog rows, jobs DONE
    and audit events for de-identified jobs in one transaction (a batch of one is the
    one-job case); the spooled originals go only once that is committed."""
    if not batch:
        return {}
    now = utcnow()
    # Archive files already written by a lost try: same bytes at the same path, so a retry
    # need not write and fsync them again.
    written: dict[str, NewInstance] = {}
    for attempt in range(1, COMMIT_TRIES + 1):
        try:
            # The store first, with no transaction open (archive/work/storing.py).
            store_unrecorded(
                ctx.sessions, ctx.archive(), [ready.outcome for ready in batch], written
            )
            new_jobs = _commit(ctx, batch, written, now=now)
            break
        except ArchiveUnavailable as exc:
            return _give_back(ctx, [(ready.job_id, ready.claimed_at) for ready in batch], exc)
        except (IntegrityError, Unstored):
            if attempt == COMMIT_TRIES:
                log.error(
                    "jobs %s: catalog commit conflicted %d times; left for the sweeper",
                    ",".join(str(ready.job_id) for ready in batch),
                    attempt,
                )
                raise
            log.info("batch of %d jobs lost a catalog race; trying again", len(batch))
    for ready in batch:
        ready.spool_path.unlink(missing_ok=True)
    return {
        ready.job_id: JobResult.ARCHIVED if ready.job_id in new_jobs else JobResult.DUPLICATE
        for ready in batch
    }


def _give_back(
    ctx: WorkerContext, held: Sequence[tuple[int, datetime]], error: ArchiveUnavailable
) -> dict[int, JobResult]:
    """The store did not confirm: nothing of the batch was committed, so its jobs go back
    to RECEIVED with the attempt uncounted (an outage is not the instance's fault), and the
    sweeper sends them again once they are stale. Their spooled originals stay."""
    with ctx.sessions.begin() as session:
        for job_id, claimed_at in held:
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .where(Job.status == JobStatus.RUNNING)
                .where(Job.claimed_at == claimed_at)
                .values(
                    status=JobStatus.RECEIVED,
                    attempts=Job.attempts - 1,
                    last_error_code=error.code,
                )
                .execution_options(synchronize_session=False)
            )
    log.warning("%d jobs wait for the archive: %s", len(held), error.message)
    return {job_id: JobResult.RETRY for job_id, _ in held}


def _commit(
    ctx: WorkerContext, batch: Sequence[_Ready], written: dict[str, NewInstance], *, now: datetime
) -> set[int]:
    """One try of the batch's transaction; returns the jobs that archived a new instance
    (the others are duplicates). Records only what the store step confirmed (`written`).
    Raises IntegrityError when it lost a race, Unstored when it found an instance to record
    that was not stored: nothing of it is then committed."""
    with ctx.sessions.begin() as session:
        known = archived_instance_ids(session, (ready.sop_uid for ready in batch))
        new = _first_of_each_instance(batch, known)
        new_jobs = {ready.job_id for ready in new}
        items = stored_items([ready.sop_uid for ready in new], written)
        instance_ids = known | record_instances(session, items, now=now)
        _mark_done(
            session,
            [(r.job_id, instance_ids[r.sop_uid], r.job_id not in new_jobs) for r in batch],
            now=now,
        )
        sampling.settle(session, [(r.job_id, r.outcome.facts.pixel_actions) for r in batch])
        # Last before the commit: the audit append holds the chain's head lock until then.
        for record in _archived_events(new):
            audit.append(session, record)
    return new_jobs


def _first_of_each_instance(batch: Sequence[_Ready], known: dict[str, int]) -> list[_Ready]:
    """The jobs that bring an instance not yet archived; the others (already archived, or
    the same instance twice in this batch) end as duplicates."""
    first: dict[str, _Ready] = {}
    for ready in batch:
        if ready.sop_uid not in known:
            first.setdefault(ready.sop_uid, ready)
    return list(first.values())


def _archived_events(new: Sequence[_Ready]) -> list[audit.AuditRecord]:
    """One event per study (and profile version) of the batch."""
    groups: dict[tuple[str, str, str], list[tuple[int, str]]] = {}
    for ready in new:
        facts = ready.outcome.facts
        key = (facts.study_uid, facts.profile_name, facts.profile_version)
        groups.setdefault(key, []).append((ready.job_id, ready.sop_uid))
    return [
        audit.instances_archived(study_uid, name, version, archived)
        for (study_uid, name, version), archived in sorted(groups.items())
    ]


def _mark_done(session: Session, done: Sequence[tuple[int, int, bool]], *, now: datetime) -> None:
    """Jobs DONE, each with its (job id, instance id, duplicate), in one statement."""
    if not done:
        return
    instance_ids = {job_id: instance_id for job_id, instance_id, _ in done}
    duplicates = {job_id: duplicate for job_id, _, duplicate in done}
    session.execute(
        update(Job)
        .where(Job.id.in_(sorted(instance_ids)))
        .values(
            status=JobStatus.DONE,
            instance_id=case(instance_ids, value=Job.id),
            duplicate=case(duplicates, value=Job.id),
            finished_at=now,
            last_error_code=None,
        )
        .execution_options(synchronize_session=False)
    )


# --- quarantine -----------------------------------------------------------------------------


def _quarantine(
    ctx: WorkerContext, job_id: int, spool_name: str, error: QuarantineError
) -> JobResult:
    held_path = ctx.quarantine_dir / spool_name
    ctx.quarantine_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Originals kept aside are readable by the service account only.
    durable_move(ctx.spool_dir / "incoming" / spool_name, held_path, mode=0o600)
    return _finish_quarantine(ctx, job_id, spool_name, error, held_path)


def _finish_quarantine(
    ctx: WorkerContext,
    job_id: int,
    spool_name: str,
    error: QuarantineError,
    held_path: Path | None,
) -> JobResult:
    now = utcnow()
    with ctx.sessions.begin() as session:
        job = session.get_one(Job, job_id)
        job.status = JobStatus.QUARANTINED
        job.last_error_code = error.reason.value
        job.finished_at = now
        entry = session.scalars(
            select(QuarantineEntry).where(QuarantineEntry.job_id == job_id)
        ).first()
        size = held_path.stat().st_size if held_path else 0
        if entry is None:
            session.add(
                QuarantineEntry(
                    job_id=job_id,
                    reason=error.reason.value,
                    message=error.message,
                    stored_name=spool_name,
                    size_bytes=size,
                    status=QuarantineStatus.HELD,
                    created_at=now,
                )
            )
        else:  # quarantined again after a retry: the newest decision is the one that holds
            entry.reason = error.reason.value
            entry.message = error.message
            entry.size_bytes = size
            entry.status = QuarantineStatus.HELD
            entry.created_at = now
        audit.append(session, audit.job_quarantined(job_id, error.reason.value))
        sampling.settle_quarantined(session, job_id)
    log.info("job %s quarantined: %s", job_id, error.reason.value)
    return JobResult.QUARANTINED
