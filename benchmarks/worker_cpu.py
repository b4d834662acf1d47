"""A worker's CPU per instance, in-process, with no queue and no other process on the clock.

    .venv/bin/python -m benchmarks.worker_cpu [--instances 400] [--batch 16] [--studies 4]
        [--profile OUT]

Puts the corpus's CT instances in a spool with their RECEIVED jobs of this node (embedded
SQLite catalog, as `amana run` has it), builds the worker's context exactly as a worker
process does (`amana.worker`), then runs the jobs through `process_jobs` in batches of
`--batch`, timing `time.process_time()` (user + system CPU of this process) around each
batch. The first batch is a warm-up, off the clock.

Primary CT series are sampled (ma-national, archive/work/sampling.py), so a slice goes
through the worker twice, as in `amana run`: first it is held, then, once the sweeper has
had the series' samples screened, it is released and archived. The benchmark plays the
sweeper's part (its pass is off the clock) and times all three phases: hold, screen (the
samples) and release; the figure is their CPU over the instances. The jobs the worker's
commits release go through the worker's own sink (published to the embedded queue, as a
worker does) and are then run here in batches of `--batch`. With `--profile`, cProfile
stats of the timed batches are written there and the top entries printed.

CPU time, not wall time, so that other work on the machine changes the figure little.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.support.corpus import build_corpus


def _prepare_home(home: Path) -> dict[str, str]:
    env = dict(
        os.environ,
        AMANA_HOME=str(home),
        AMANA_KEY_FILE=str(home / "key"),
        AMANA_SPOOL_MIN_FREE_MB="64",
        AMANA_LOG_LEVEL="WARNING",
    )
    env.pop("AMANA_DATABASE_URL", None)
    env.pop("AMANA_BROKER_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "amana.cli", "db", "upgrade"], env=env, capture_output=True
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode(errors="replace")[-1500:])
    return env


def _enqueue(sessions: object, spool: Path, files: list[Path], node: str) -> list[int]:
    try:
        from archive.work.jobs import create_job
    except ImportError:  # older layouts, for before/after runs of an earlier commit
        from archive.jobs import create_job  # type: ignore[import-not-found,no-redef]
    incoming = spool / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    ids = []
    with sessions.begin() as session:  # type: ignore[attr-defined]
        for source in files:
            name = f"{uuid.uuid4().hex}.dcm"
            shutil.copyfile(source, incoming / name)
            ids.append(
                create_job(
                    session,
                    spool_name=name,
                    size_bytes=source.stat().st_size,
                    calling_ae="BENCH",
                    source_kind="dicom",
                    node=node,
                )
            )
    return ids


def _collect_released(sessions: object) -> list[int]:
    """The job ids the worker's commits hand to its sink, which still publishes them."""
    from archive.work import publish

    info = sessions.kw["info"]  # type: ignore[attr-defined]
    sink = info[publish._SINK]
    released: list[int] = []

    def collect(job_ids: list[int]) -> None:
        released.extend(job_ids)
        sink(job_ids)

    publish.attach_job_sink(sessions, collect)  # type: ignore[arg-type]
    return released


def _sweep(sessions: object) -> list[int]:
    """The sweeper's pass once every series has stopped growing: its samples, to screen."""
    from datetime import timedelta

    from archive.work import sampling

    with sessions.begin() as session:  # type: ignore[attr-defined]
        return sampling.start_due_samples(session, stable_after=timedelta(0))


def _archived(sessions: object, ids: list[int]) -> int:
    from sqlalchemy import func, select

    from archive.catalog.models import Job, JobStatus

    with sessions.begin() as session:  # type: ignore[attr-defined]
        return int(
            session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.id.in_(ids))
                .where(Job.status == JobStatus.DONE)
            )
        )


def measure(
    instances: int, batch: int, profile: Path | None, work: Path, studies: int = 4
) -> float:
    corpus = build_corpus(work / "corpus", instances=instances + batch, studies=studies)
    env = _prepare_home(work / "home")
    os.environ.update({k: v for k, v in env.items() if k.startswith("AMANA_")})
    from amana import worker
    from amana.keys import ensure_key
    from amana.settings import Settings

    settings = Settings()
    ensure_key(settings.key_path)
    state = worker._build_state(settings)
    state.context.deidentifier.warm_up()
    worker._prebuilt = state.context.deidentifier
    ctx = worker._context_for(settings)
    released = _collect_released(ctx.sessions)
    ids = _enqueue(ctx.sessions, settings.spool_path, corpus.ct, settings.node)
    warm_up, ids = ids[:batch], ids[batch:]
    worker._run(settings, warm_up)  # warm-up: caches, first connection, first audit head
    # CPU time, as the figure: fsyncs and lock waits are not what this measures.
    profiler = cProfile.Profile(time.process_time) if profile else None
    cpu: dict[str, float] = {}

    def timed(phase: str, job_ids: list[int]) -> None:
        # The warm-up's own slices go through every phase too, off the clock.
        if extra := [job_id for job_id in job_ids if job_id in warm_up]:
            worker._run(settings, extra)
        job_ids = [job_id for job_id in job_ids if job_id not in warm_up]
        for chunk in [job_ids[i : i + batch] for i in range(0, len(job_ids), batch)]:
            t0 = time.process_time()
            if profiler:
                profiler.enable()
            worker._run(settings, chunk)
            if profiler:
                profiler.disable()
            cpu[phase] = cpu.get(phase, 0.0) + time.process_time() - t0

    timed("hold", ids)
    samples = _sweep(ctx.sessions)
    timed("screen", samples)
    timed("release", list(released))
    done = _archived(ctx.sessions, ids)
    per = sum(cpu.values()) / len(ids) * 1000
    phases = ", ".join(f"{phase} {seconds / len(ids) * 1000:.2f}" for phase, seconds in cpu.items())
    print(
        f"worker CPU: {per:.2f} ms/instance over {len(ids)} tag-only CT instances "
        f"(batch {batch}; by phase, per instance: {phases}; {done} archived)"
    )
    if profiler and profile:
        profiler.dump_stats(str(profile))
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(30)
    return per


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=400)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument(
        "--studies",
        type=int,
        default=4,
        help="one CT series each; sample screening costs 3 slices' worth per series",
    )
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="amana-worker-cpu-"))
    try:
        measure(args.instances, args.batch, args.profile, work, args.studies)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
