"""Sampled series in the catalog: slices held until their series stops growing, samples
screened, the rest released undecoded or examined (the rule: anonymizer/pixels/sampling.py).

A series' life (series_sampling.state, one row per series):

    HOLDING   each slice the worker meets is HELD (spooled, not archived)
        | the series received nothing for `stable_after` (sweeper)
    SAMPLING  its first, middle and last HELD slice go back to RECEIVED to be screened
        | every sample archived and none showed text      | a sample showed text, or
    CLEAN     held slices released: archived undecoded     | could not be screened
              a late slice is screened itself ------------> TEXT  every slice examined

The invariant: no slice of a TEXT series is archived unexamined. Every change of state and
every archive commit of a slice takes the series row's lock (PostgreSQL FOR UPDATE; SQLite
has one writer), so a slice is held or given its mode, and a series decided, in one order.
When text turns up after slices were archived undecoded (a late slice, or a slice released
CLEAN that was still running), those slices are put back to RECEIVED with the mode
`reexamine`: the worker examines their archived file (pipeline.py) and replaces it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session

from anonymizer.engine import SampledSlice
from anonymizer.pixels.sampling import (
    SCREENED_NO_INK,
    PixelMode,
    examined_in_full,
    sample_positions,
    screen_found_text,
)
from archive.catalog.models import Instance, Job, JobStatus, SamplingState, SeriesSampling
from archive.work.jobs import Claim, utcnow
from archive.work.publish import enqueue_after_commit

# Mode of an archived slice of a TEXT series that was archived undecoded: its archived file
# is examined and replaced (pipeline.py).
REEXAMINE = "reexamine"
# A decision per sweeper pass is bounded so one pass stays short; the rest wait a pass.
DUE_PER_PASS = 200

Placement = Literal["held", "lost"] | PixelMode


def place(session: Session, slices: Sequence[tuple[Claim, SampledSlice]]) -> dict[int, Placement]:
    """Where claimed slices of sampled series go, in the caller's transaction (one for a
    batch): "held" (the series is still growing or being sampled), "lost" (another worker
    took the job over), or the pixel mode to run it with now (the series is decided)."""
    if not slices:
        return {}
    now = utcnow()
    by_job = {claim.job_id: sampled for claim, sampled in slices}
    # The first statement writes, so that on SQLite the transaction holds the write lock
    # before it reads the series' state.
    mine = set(
        session.scalars(
            update(Job)
            .where(Job.status == JobStatus.RUNNING)
            .where(
                or_(*[(Job.id == c.job_id) & (Job.claimed_at == c.claimed_at) for c, _ in slices])
            )
            .values(
                series_key=case({j: s.series_key for j, s in by_job.items()}, value=Job.id),
                instance_number=case(
                    {j: s.instance_number for j, s in by_job.items()}, value=Job.id
                ),
            )
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        ).all()
    )
    placed: dict[int, Placement] = {job_id: "lost" for job_id in by_job if job_id not in mine}
    series = _locked_series(session, [s for j, s in by_job.items() if j in mine], now)
    held: list[int] = []
    modes: dict[int, PixelMode] = {}
    for job_id in sorted(mine):
        state = series[by_job[job_id].series_key]
        if state.state in (SamplingState.HOLDING, SamplingState.SAMPLING):
            held.append(job_id)
            placed[job_id] = "held"
            if state.state == SamplingState.HOLDING:
                state.last_held_at = now
        else:
            # Decided: a late slice of a clean series is a sample itself.
            text = state.state == SamplingState.TEXT
            modes[job_id] = PixelMode.EXAMINE if text else PixelMode.SCREEN
            placed[job_id] = modes[job_id]
    if held:
        session.execute(
            update(Job)
            .where(Job.id.in_(held))
            # Holding is not an attempt: the released job's run counts as its first, so it
            # is batched like any new job and only crashes bring it near MAX_ATTEMPTS.
            .values(status=JobStatus.HELD, pixel_mode=None, attempts=Job.attempts - 1)
            .execution_options(synchronize_session=False)
        )
    if modes:
        session.execute(
            update(Job)
            .where(Job.id.in_(sorted(modes)))
            .values(pixel_mode=case({j: m.value for j, m in modes.items()}, value=Job.id))
            .execution_options(synchronize_session=False)
        )
    return placed


def _locked_series(
    session: Session, slices: Sequence[SampledSlice], now: datetime
) -> dict[str, SeriesSampling]:
    """The series rows of `slices`, made when missing, locked in key order (two workers
    placing slices of the same series wait for each other instead of deadlocking)."""
    if not slices:
        return {}
    first = {s.series_key: s for s in reversed(slices)}
    rows = [
        {
            "series_key": key,
            "study_uid": first[key].study_uid,
            "state": SamplingState.HOLDING.value,
            "last_held_at": now,
        }
        for key in sorted(first)
    ]
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(pg_insert(SeriesSampling).values(rows).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.execute(sqlite_insert(SeriesSampling).values(rows).on_conflict_do_nothing())
    found = session.scalars(
        select(SeriesSampling)
        .where(SeriesSampling.series_key.in_(sorted(first)))
        .order_by(SeriesSampling.series_key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    return {row.series_key: row for row in found}


def start_due_samples(session: Session, *, stable_after: timedelta) -> list[int]:
    """Series that received nothing for `stable_after`: their first, middle and last held
    slice go back to RECEIVED to be screened. Returns the job ids the caller sends after
    the commit."""
    now = utcnow()
    due = session.scalars(
        select(SeriesSampling)
        .where(SeriesSampling.state == SamplingState.HOLDING)
        .where(SeriesSampling.last_held_at < now - stable_after)
        .order_by(SeriesSampling.id)
        .limit(DUE_PER_PASS)
        .with_for_update(skip_locked=True)
    ).all()
    started: list[int] = []
    for series in due:
        held = session.execute(
            select(Job.id, Job.instance_number)
            .where(Job.series_key == series.series_key)
            .where(Job.status == JobStatus.HELD)
            .order_by(Job.id)  # job ids grow in the order slices were received
        ).all()
        if not held:
            continue
        picks = [held[i][0] for i in sample_positions([(row[1], row[0]) for row in held])]
        started += _send(session, picks, PixelMode.SCREEN.value)
        series.state = SamplingState.SAMPLING
    # Held slices of a decided series cannot exist (the decision releases them under the
    # series lock); should one be found, it is released with its series' mode, never left.
    decided = ((SamplingState.CLEAN, PixelMode.AUTO), (SamplingState.TEXT, PixelMode.EXAMINE))
    for state, mode in decided:
        stray = session.scalars(
            select(Job.id)
            .join(SeriesSampling, SeriesSampling.series_key == Job.series_key)
            .where(Job.status == JobStatus.HELD)
            .where(SeriesSampling.state == state)
        ).all()
        started += _send(session, stray, mode.value)
    return started


def settle(session: Session, archived: Sequence[tuple[int, Sequence[str]]]) -> None:
    """In the transaction that archives these jobs (job id, pixel actions), after they were
    marked DONE: record what their screens found, and decide their series."""
    if not archived:
        return
    actions = dict(archived)
    rows = session.execute(
        select(Job.id, Job.series_key, Job.pixel_mode)
        .where(Job.id.in_(sorted(actions)))
        .where(Job.series_key.is_not(None))
    ).all()
    by_series: dict[str, list[tuple[int, str | None]]] = {}
    for job_id, key, mode in rows:
        by_series.setdefault(str(key), []).append((int(job_id), mode))
    for key in sorted(by_series):
        series = _lock(session, key)
        if series is None:
            continue
        jobs = by_series[key]
        text = any(
            mode == PixelMode.SCREEN and screen_found_text(actions[job_id]) for job_id, mode in jobs
        )
        if text:
            found_text(session, series)
        elif series.state == SamplingState.TEXT:
            # Released undecoded before the series turned TEXT and committed after it.
            _reexamine(session, [j for j, _ in jobs if not examined_in_full(actions[j])])
        elif series.state == SamplingState.SAMPLING and not _samples_pending(session, key):
            series.state = SamplingState.CLEAN
            series.decided_at = utcnow()
            _release(session, key, PixelMode.AUTO)


def settle_quarantined(session: Session, job_id: int) -> None:
    """A sample that could not be screened (quarantined for any reason) counts as text:
    its series is examined in full rather than trusted on the word of the others."""
    row = session.execute(select(Job.series_key, Job.pixel_mode).where(Job.id == job_id)).first()
    if row is None or row[0] is None or row[1] != PixelMode.SCREEN:
        return
    series = _lock(session, str(row[0]))
    if series is not None:
        found_text(session, series)


def found_text(session: Session, series: SeriesSampling) -> None:
    """The series shows text: every slice of it is examined, those already archived
    undecoded included."""
    if series.state != SamplingState.TEXT:
        series.state = SamplingState.TEXT
        series.decided_at = utcnow()
    _release(session, series.series_key, PixelMode.EXAMINE)
    waiting = session.scalars(
        select(Job.id)
        .where(Job.series_key == series.series_key)
        .where(Job.status == JobStatus.RECEIVED)
        .where(Job.pixel_mode.in_([PixelMode.AUTO.value, PixelMode.SCREEN.value]))
    ).all()
    # Already sent: only their mode changes; the worker reads it when it claims them.
    _set_mode(session, waiting, PixelMode.EXAMINE.value)
    # Archived without a full examination: undecoded, or screened and found without ink.
    partly = session.scalars(
        select(Job.id)
        .join(Instance, Instance.id == Job.instance_id)
        .where(Job.series_key == series.series_key)
        .where(Job.status == JobStatus.DONE)
        .where(
            Instance.pixel_actions.not_like("examined:%")
            | Instance.pixel_actions.like(f"%{SCREENED_NO_INK}%")
        )
    ).all()
    _reexamine(session, partly)


def _reexamine(session: Session, job_ids: Sequence[int]) -> None:
    """Archived-undecoded slices of a TEXT series: back to RECEIVED to have their archived
    file examined (only DONE jobs that archived an instance of their own)."""
    if not job_ids:
        return
    ids = session.scalars(
        update(Job)
        .where(Job.id.in_(sorted(job_ids)))
        .where(Job.status == JobStatus.DONE)
        .where(Job.duplicate.is_(False))
        .where(Job.instance_id.is_not(None))
        # Attempts count afresh: the re-examination is new work with its own crash budget.
        .values(
            status=JobStatus.RECEIVED,
            pixel_mode=REEXAMINE,
            attempts=0,
            enqueued_at=utcnow(),
            resends=0,
        )
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).all()
    enqueue_after_commit(session, ids)


def _lock(session: Session, key: str) -> SeriesSampling | None:
    return session.scalars(
        select(SeriesSampling)
        .where(SeriesSampling.series_key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def _samples_pending(session: Session, key: str) -> bool:
    pending = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.series_key == key)
        .where(Job.pixel_mode == PixelMode.SCREEN.value)
        .where(Job.status.in_([JobStatus.RECEIVED, JobStatus.RUNNING]))
    )
    return bool(pending)


def _release(session: Session, key: str, mode: PixelMode) -> None:
    """The held slices of a decided series, sent after the commit with their mode."""
    ids = session.scalars(
        select(Job.id).where(Job.series_key == key).where(Job.status == JobStatus.HELD)
    ).all()
    enqueue_after_commit(session, _send(session, ids, mode.value))


def _send(session: Session, job_ids: Iterable[int], mode: str) -> list[int]:
    """Held jobs back to RECEIVED with their mode; returns those that were held."""
    ids = sorted(job_ids)
    if not ids:
        return []
    return list(
        session.scalars(
            update(Job)
            .where(Job.id.in_(ids))
            .where(Job.status == JobStatus.HELD)
            # Sent afresh: the sweeper's back-off starts again (jobs.py, jobs_to_resend).
            .values(status=JobStatus.RECEIVED, pixel_mode=mode, enqueued_at=utcnow(), resends=0)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        ).all()
    )


def _set_mode(session: Session, job_ids: Sequence[int], mode: str) -> None:
    if job_ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(sorted(job_ids)))
            .values(pixel_mode=mode)
            .execution_options(synchronize_session=False)
        )
