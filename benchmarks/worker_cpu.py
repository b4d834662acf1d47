"""A worker's CPU per instance, in-process, with no queue and no other process on the clock.

    .venv/bin/python -m benchmarks.worker_cpu [--instances 400] [--batch 16] [--profile OUT]

Puts the corpus's CT instances in a spool with their RECEIVED jobs (embedded SQLite
catalog, as `amana run` has it), builds the worker's context exactly as a worker process
does (`amana.worker`), then runs the jobs through `process_jobs` in batches of `--batch`,
timing `time.process_time()` (user + system CPU of this process) around each batch. The
first batch is a warm-up, off the clock. With `--profile`, cProfile stats of the timed
batches are written there and the top entries printed.

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


def _enqueue(sessions: object, spool: Path, files: list[Path]) -> list[int]:
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
                )
            )
    return ids


def measure(instances: int, batch: int, profile: Path | None, work: Path) -> float:
    corpus = build_corpus(work / "corpus", instances=instances + batch, studies=4)
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
    ids = _enqueue(ctx.sessions, settings.spool_path, corpus.ct)
    batches = [ids[i : i + batch] for i in range(0, len(ids), batch)]
    worker._run(settings, batches[0])  # warm-up: caches, first connection, first audit head
    profiler = cProfile.Profile() if profile else None
    timed = 0
    cpu = 0.0
    for chunk in batches[1:]:
        t0 = time.process_time()
        if profiler:
            profiler.enable()
        worker._run(settings, chunk)
        if profiler:
            profiler.disable()
        cpu += time.process_time() - t0
        timed += len(chunk)
    per = cpu / timed * 1000
    print(f"worker CPU: {per:.2f} ms/instance over {timed} tag-only CT instances (batch {batch})")
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
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="amana-worker-cpu-"))
    try:
        measure(args.instances, args.batch, args.profile, work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
