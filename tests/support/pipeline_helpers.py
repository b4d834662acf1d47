"""The worker pipeline without a queue: a context as a worker process builds it, and jobs
put in the spool and the catalog as the receiver does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from amana.keys import ensure_key
from anonymizer.engine import Deidentifier, Profile, load_profile
from anonymizer.pixels import bind_rules_dir
from archive.catalog.models import Job, JobStatus
from archive.work.jobs import create_job
from archive.work.pipeline import JobResult, WorkerContext, process_jobs
from ingest.spool import Spool
from ingest.sweeper import sweep_once
from tests.paths import REPO_ROOT


def national_profile(*, sampled: bool = True) -> Profile:
    """ma-national as shipped, or (`sampled=False`) with its primary CT/MR slices archived
    one by one, unexamined, instead of held per series for sampling. Tests of batching,
    races and the catalog use CT slices and want them archived by the run they call; the
    sampling path is tested in tests/integration/test_series_sampling.py."""
    profile = load_profile("ma-national", REPO_ROOT / "profiles")
    if sampled or profile.pixel is None:
        return profile
    pixel = profile.pixel.model_copy(update={"primary_series": "unexamined"})
    if profile.pixel.rules_dir is not None:
        pixel = bind_rules_dir(pixel, profile.pixel.rules_dir)
    return profile.model_copy(update={"pixel": pixel})


def worker_context(
    sessions: sessionmaker[Session], root: Path, *, sampled: bool = False
) -> WorkerContext:
    """The ma-national profile (see `national_profile` for `sampled`) with a key, spool,
    archive and quarantine under `root`."""
    key = ensure_key(root / "secrets" / "key")
    return WorkerContext(
        sessions=sessions,
        deidentifier=Deidentifier(national_profile(sampled=sampled), key),
        spool_dir=root / "spool",
        archive_dir=root / "archive",
        quarantine_dir=root / "quarantine",
        stale_after=timedelta(seconds=300),
    )


def enqueue(ctx: WorkerContext, source: Path) -> int:
    """A copy of `source` in the spool and its RECEIVED job; returns the job id."""
    name, size = Spool(ctx.spool_dir, 0).copy_in(source)
    with ctx.sessions.begin() as session:
        return create_job(
            session, spool_name=name, size_bytes=size, calling_ae="T", source_kind="t"
        )


def process_to_end(ctx: WorkerContext, job_ids: Sequence[int]) -> dict[int, JobResult]:
    """`process_jobs`, then whatever it left waiting until nothing is: slices held for their
    series' sampling are decided by the sweeper (series stable at once) and run with the
    mode it gives them. Returns each given job's last result (never HELD once it ends)."""
    results = process_jobs(ctx, job_ids)
    for _ in range(10):
        with ctx.sessions() as session:
            waiting = session.scalars(
                select(Job.id).where(Job.status.in_([JobStatus.RECEIVED, JobStatus.HELD]))
            ).all()
        if not waiting:
            return results
        sweep_once(
            ctx.sessions,
            lambda _ids: None,
            stale_after=timedelta(hours=1),
            study_stable_after=timedelta(0),
        )
        with ctx.sessions() as session:
            runnable = list(
                session.scalars(
                    select(Job.id).where(Job.status == JobStatus.RECEIVED).order_by(Job.id)
                ).all()
            )
        for start in range(0, len(runnable), 16):
            ran = process_jobs(ctx, runnable[start : start + 16])
            results.update({job_id: r for job_id, r in ran.items() if job_id in results})
    raise AssertionError("jobs still held or waiting after ten sweeper passes")
