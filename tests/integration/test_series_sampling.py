"""Sampling of primary CT series through the worker's pipeline and the sweeper, against a
real catalog (SQLite and PostgreSQL), real decoders and real tesseract; no queue: the test
plays the broker by running whatever is RECEIVED (docs/pixels.md, "Sampling primary
series"). Decodes are counted where they happen (anonymizer.pixels.codec)."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.pixels import codec
from anonymizer.pixels.sampling import examined_in_full
from archive.catalog.models import (
    Instance,
    Job,
    JobStatus,
    SamplingState,
    SeriesSampling,
    Study,
    StudyStatus,
)
from archive.stores import StoreCredentials
from archive.stores.dicomweb import DicomWebStore
from archive.work.pipeline import JobResult, WorkerContext, process_jobs
from ingest.sweeper import sweep_once
from tests.support.ct_series import TEXT_BOX, TEXT_VALUE, CtSeries, write_series
from tests.support.orthanc import PASSWORD, USER, Orthanc
from tests.support.pipeline_helpers import enqueue, worker_context

pytestmark = pytest.mark.ocr


@pytest.fixture()
def ctx(sessions: sessionmaker[Session], tmp_path: Path) -> WorkerContext:
    return worker_context(sessions, tmp_path, sampled=True)


def _sweep(ctx: WorkerContext) -> tuple[int, int]:
    """One sweeper pass with series and studies stable at once (nothing is re-sent stale)."""
    return sweep_once(
        ctx.sessions,
        lambda _ids: None,
        stale_after=timedelta(hours=1),
        study_stable_after=timedelta(0),
    )


def _runnable(ctx: WorkerContext) -> list[int]:
    with ctx.sessions() as session:
        return list(
            session.scalars(
                select(Job.id).where(Job.status == JobStatus.RECEIVED).order_by(Job.id)
            ).all()
        )


def _run_received(ctx: WorkerContext) -> dict[int, JobResult]:
    """Run every RECEIVED job, in batches as the publisher makes them, until none is left."""
    results: dict[int, JobResult] = {}
    while ids := _runnable(ctx):
        for start in range(0, len(ids), 16):
            results.update(process_jobs(ctx, ids[start : start + 16]))
    return results


def _settle(ctx: WorkerContext) -> None:
    """Worker and sweeper until nothing is held or waiting."""
    for _ in range(10):
        _run_received(ctx)
        _sweep(ctx)
        with ctx.sessions() as session:
            open_jobs = session.scalars(
                select(Job.id).where(Job.status.in_([JobStatus.RECEIVED, JobStatus.HELD]))
            ).all()
        if not open_jobs:
            return
    raise AssertionError("jobs still held or waiting after ten passes")


def _send(ctx: WorkerContext, series: CtSeries) -> list[int]:
    return [enqueue(ctx, path) for path in series.files]


def _archived(ctx: WorkerContext) -> list[tuple[int | None, str, str]]:
    """(Instance Number, pixel actions, archive path) of every archived instance."""
    with ctx.sessions() as session:
        rows = session.execute(
            select(Instance.instance_number, Instance.pixel_actions, Instance.archive_path)
        ).all()
    return sorted(((r[0], r[1], r[2]) for r in rows), key=lambda r: r[0] or 0)


def _series_state(ctx: WorkerContext) -> SamplingState:
    with ctx.sessions() as session:
        return session.scalars(select(SeriesSampling.state)).one()


def _stored(ctx: WorkerContext, relpath: str) -> bytes:
    data = ctx.archive().read(Path(relpath))
    assert data is not None, "the catalog names an instance the archive does not hold"
    return data


def _text_pixels_left(ctx: WorkerContext, relpath: str) -> int:
    """Pixels at the burned-in text's value in the text's box of an archived slice."""
    ds = pydicom.dcmread(io.BytesIO(_stored(ctx, relpath)))
    x0, y0, x1, y1 = TEXT_BOX
    return int(np.count_nonzero(ds.pixel_array[y0:y1, x0:x1] == TEXT_VALUE))


def test_clean_series_is_held_then_pays_three_decodes(ctx: WorkerContext, tmp_path: Path) -> None:
    """Rule: a primary CT series without text is held until stable, then decoded only for
    its first, middle and last slice (by Instance Number, whatever the sending order), and
    every slice is archived; the others are never decoded."""
    count = 24
    order = list(reversed(range(count)))  # sent last-number-first: numbers decide, not order
    series = write_series(tmp_path / "in", count, send_order=order)
    jobs = _send(ctx, series)
    before = codec.decodes_started()

    first = process_jobs(ctx, jobs)
    assert set(first.values()) == {JobResult.HELD}
    assert _archived(ctx) == []
    _sweep(ctx)
    assert _series_state(ctx) == SamplingState.SAMPLING
    with ctx.sessions() as session:
        samples = (
            session.execute(select(Job.instance_number).where(Job.status == JobStatus.RECEIVED))
            .scalars()
            .all()
        )
    assert sorted(samples) == [1, (count - 1) // 2 + 1, count]

    _settle(ctx)
    assert codec.decodes_started() - before == 3
    archived = _archived(ctx)
    assert [number for number, _, _ in archived] == list(range(1, count + 1))
    screened = [n for n, actions, _ in archived if actions.startswith("examined:series_sample")]
    assert sorted(screened) == sorted(samples)
    # These clean slices show no text-like ink: the screen ended before OCR.
    assert all("screened:no_ink" in a for n, a, _ in archived if n in screened)
    assert all(
        actions.startswith("not_examined") for n, actions, _ in archived if n not in screened
    )
    assert _series_state(ctx) == SamplingState.CLEAN
    with ctx.sessions() as session:
        statuses = set(session.scalars(select(Job.status)).all())
    assert statuses == {JobStatus.DONE}


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_text_in_a_sampled_slice_examines_the_whole_series(
    ctx: WorkerContext, tmp_path: Path, where: str
) -> None:
    """Rule: when a sample (first, middle or last slice) shows text, every slice of its
    series is examined, and the text is masked in the archive."""
    count = 7
    position = {"first": 0, "middle": (count - 1) // 2, "last": count - 1}[where]
    series = write_series(tmp_path / "in", count, text_at={position})
    _send(ctx, series)
    _settle(ctx)

    assert _series_state(ctx) == SamplingState.TEXT
    archived = _archived(ctx)
    assert len(archived) == count
    assert all(examined_in_full(actions.split(",")) for _, actions, _ in archived), archived
    text_number, text_actions, text_path = archived[position]
    assert text_number == position + 1
    assert "screened:text" in text_actions and "ocr_mask:0_boxes" not in text_actions
    assert _text_pixels_left(ctx, text_path) == 0
    with ctx.sessions() as session:
        assert set(session.scalars(select(Job.status)).all()) == {JobStatus.DONE}


@pytest.fixture(params=["file", "dicomweb"])
def any_store_ctx(
    request: pytest.FixtureRequest, sessions: sessionmaker[Session], tmp_path: Path
) -> WorkerContext:
    ctx = worker_context(sessions, tmp_path, sampled=True)
    if request.param == "dicomweb":
        orthanc = Orthanc(tmp_path / "orthanc").start()
        request.addfinalizer(orthanc.stop)
        ctx.store = DicomWebStore(
            orthanc.archive_url, StoreCredentials(user=USER, password=PASSWORD)
        )
    return ctx


def test_late_slice_with_text_reexamines_what_was_archived_undecoded(
    any_store_ctx: WorkerContext, tmp_path: Path
) -> None:
    """Rule: a slice that arrives after its series was found clean is screened itself; if
    it shows text, every slice of the series already archived undecoded is examined from
    its archived instance and replaced in the archive, so none stays unexamined: with the
    file store and with a DICOMweb archive (Orthanc, read back through WADO-RS), where
    each slice is still there once."""
    ctx = any_store_ctx
    series = write_series(tmp_path / "in", 6)
    _send(ctx, series)
    _settle(ctx)
    assert _series_state(ctx) == SamplingState.CLEAN
    before = {path: hashlib.sha256(_stored(ctx, path)).hexdigest() for _, _, path in _archived(ctx)}

    late = write_series(
        tmp_path / "late",
        1,
        text_at={0},
        study_uid=series.study_uid,
        series_uid=series.series_uid,
        first_number=7,
    )
    (late_job,) = _send(ctx, late)
    assert process_jobs(ctx, [late_job])[late_job] == JobResult.ARCHIVED
    assert _series_state(ctx) == SamplingState.TEXT
    _settle(ctx)

    archived = _archived(ctx)
    assert len(archived) == 7
    assert all(examined_in_full(actions.split(",")) for _, actions, _ in archived), archived
    assert _text_pixels_left(ctx, archived[-1][2]) == 0
    with ctx.sessions() as session:
        assert set(session.scalars(select(Job.status)).all()) == {JobStatus.DONE}
        hashes = dict(session.execute(select(Instance.archive_path, Instance.sha256)).all())
    for path, digest in hashes.items():
        # The catalog describes the file now in the archive.
        assert hashlib.sha256(_stored(ctx, path)).hexdigest() == digest
    assert set(before) <= set(hashes)
    if isinstance(ctx.store, DicomWebStore):
        assert all(ctx.store.count(Path(p).name.removesuffix(".dcm")) == 1 for p in hashes)


def test_late_clean_slice_is_screened_alone(ctx: WorkerContext, tmp_path: Path) -> None:
    """Rule: a late slice of a clean series costs its own screen (one decode) and leaves the
    series clean and its other slices as they were."""
    series = write_series(tmp_path / "in", 5)
    _send(ctx, series)
    _settle(ctx)
    late = write_series(
        tmp_path / "late",
        1,
        study_uid=series.study_uid,
        series_uid=series.series_uid,
        first_number=6,
    )
    before = codec.decodes_started()
    (late_job,) = _send(ctx, late)
    assert process_jobs(ctx, [late_job])[late_job] == JobResult.ARCHIVED
    assert codec.decodes_started() - before == 1
    assert _series_state(ctx) == SamplingState.CLEAN
    assert _runnable(ctx) == []


@pytest.mark.parametrize("count", [1, 2])
def test_series_of_one_or_two_slices_screens_each(
    ctx: WorkerContext, tmp_path: Path, count: int
) -> None:
    """Rule: first, middle and last of a series of one or two slices are those slices, each
    screened once (no slice decoded twice)."""
    series = write_series(tmp_path / "in", count)
    _send(ctx, series)
    before = codec.decodes_started()
    _settle(ctx)
    assert codec.decodes_started() - before == count
    archived = _archived(ctx)
    assert len(archived) == count
    assert all(actions.startswith("examined:series_sample") for _, actions, _ in archived)


def test_study_is_not_complete_while_its_series_is_held(ctx: WorkerContext, tmp_path: Path) -> None:
    """Rule: a study is not closed COMPLETE while slices of one of its sampled series are
    held or on their way; it closes once they are archived."""
    first = write_series(tmp_path / "a", 3)
    _send(ctx, first)
    _settle(ctx)  # one series archived: the study exists and may close
    with ctx.sessions() as session:
        assert session.scalars(select(Study.status)).one() == StudyStatus.COMPLETE
    second = write_series(tmp_path / "b", 3, study_uid=first.study_uid)
    _send(ctx, second)
    _run_received(ctx)  # held
    with ctx.sessions() as session:
        session.execute(
            Study.__table__.update().values(status=StudyStatus.RECEIVING, completed_at=None)
        )
        session.commit()
    _sweep(ctx)  # starts the second series' samples; the study must stay open
    with ctx.sessions() as session:
        assert session.scalars(select(Study.status)).one() == StudyStatus.RECEIVING
    _settle(ctx)
    _sweep(ctx)
    with ctx.sessions() as session:
        assert session.scalars(select(Study.status)).one() == StudyStatus.COMPLETE
        assert len(session.scalars(select(Instance.id)).all()) == 6


def test_running_again_changes_nothing(ctx: WorkerContext, tmp_path: Path) -> None:
    """Rule: tasks are idempotent: delivering every job id again after the series settled
    runs nothing and decodes nothing."""
    series = write_series(tmp_path / "in", 4, text_at={3})
    jobs = _send(ctx, series)
    _settle(ctx)
    before = codec.decodes_started()
    again = process_jobs(ctx, jobs)
    assert set(again.values()) == {JobResult.SKIPPED}
    assert codec.decodes_started() == before


def test_reexamination_that_never_finishes_withdraws_the_slice(
    ctx: WorkerContext, tmp_path: Path
) -> None:
    """Rule: an archived slice of a series that showed text either gets examined or leaves
    the archive: when its re-examination kept killing workers (attempts used up), its file
    goes to quarantine and the catalog forgets the instance."""
    series = write_series(tmp_path / "in", 4)
    _send(ctx, series)
    _settle(ctx)
    late = write_series(
        tmp_path / "late",
        1,
        text_at={0},
        study_uid=series.study_uid,
        series_uid=series.series_uid,
        first_number=5,
    )
    (late_job,) = _send(ctx, late)
    process_jobs(ctx, [late_job])
    with ctx.sessions.begin() as session:
        rows = session.execute(
            select(Job.id, Job.spool_name, Job.instance_id)
            .where(Job.pixel_mode == "reexamine")
            .order_by(Job.id)
        ).all()
        assert len(rows) == 4
        dying, spool_name, instance_id = rows[0]
        relpath = session.get_one(Instance, instance_id).archive_path
        # As its three workers left it: claimed three times, never finished.
        session.execute(Job.__table__.update().where(Job.id == dying).values(attempts=3))
    _settle(ctx)

    with ctx.sessions() as session:
        job = session.get_one(Job, dying)
        assert (job.status, job.last_error_code, job.instance_id) == (
            JobStatus.QUARANTINED,
            "worker_lost",
            None,
        )
        assert session.get(Instance, instance_id) is None
    assert not (ctx.archive_dir / relpath).exists()
    assert (ctx.quarantine_dir / spool_name).exists()
    archived = _archived(ctx)
    assert len(archived) == 4
    assert all(examined_in_full(actions.split(",")) for _, actions, _ in archived), archived
