"""The worker process: one engine per process; Celery tasks that take job ids (a batch, or
one id from messages published before batches)."""

from __future__ import annotations

import logging
import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from celery import Celery
from celery.signals import worker_process_init

from amana.archive_store import archive_store
from amana.celery_app import PROCESS_JOB, PROCESS_JOBS, check_safe, make_celery, node_queue
from amana.keys import load_key
from amana.publisher import BATCH_MAX, publish_now
from amana.routing import routed_sink
from amana.sessions import anchored
from amana.settings import Settings
from anonymizer.engine import Deidentifier
from archive import audit
from archive.catalog.db import make_engine, make_sessionmaker
from archive.governance.watcher import ActiveProfileWatcher, refresh_deidentifier
from archive.work.pipeline import JobResult, WorkerContext, process_jobs
from archive.work.publish import attach_job_sink

log = logging.getLogger(__name__)


@dataclass
class _ProcessState:
    context: WorkerContext
    watcher: ActiveProfileWatcher
    pid: int


_state: _ProcessState | None = None
# Built by the worker's main process before it forks its pool: the compiled profile and the
# pixel machinery are inherited by every pool process instead of being rebuilt in each.
_prebuilt: Deidentifier | None = None


def _build_state(settings: Settings) -> _ProcessState:
    sessions = anchored(make_sessionmaker(make_engine(settings.db_url)), settings)
    # Jobs a worker's commit makes runnable (the held slices of a series once it is
    # decided, archive/work/sampling.py) are sent right after that commit, in batches, each
    # to its node's queue: a series may have arrived through several nodes.
    attach_job_sink(
        sessions,
        routed_sink(sessions, settings.node, partial(_publish_batches, make_celery(settings))),
    )
    # Stewards activate new profile versions in the catalog; each worker process looks at
    # most every profile_refresh_s seconds and switches between two jobs. The registry
    # serves every profile name a source names; AMANA_PROFILE's is the default.
    watcher = ActiveProfileWatcher(
        sessions, settings.profiles_dir, settings.profile, interval_s=settings.profile_refresh_s
    )
    if _prebuilt is not None:
        deidentifier = refresh_deidentifier(_prebuilt, watcher)
    else:
        deidentifier = Deidentifier(watcher.current(), load_key(settings.key_path))
    context = WorkerContext(
        sessions=sessions,
        deidentifier=deidentifier,
        spool_dir=settings.spool_path,
        archive_dir=settings.archive_path,
        quarantine_dir=settings.quarantine_path,
        stale_after=timedelta(seconds=settings.stale_after_s),
        profiles=watcher,
        store=archive_store(settings),
        node=settings.node,
    )
    return _ProcessState(context, watcher, os.getpid())


def _publish_batches(app: Celery, job_ids: Sequence[int], queue: str) -> None:
    ids = list(job_ids)
    for start in range(0, len(ids), BATCH_MAX):
        publish_now(app, ids[start : start + BATCH_MAX], queue=queue)


def _context_for(settings: Settings) -> WorkerContext:
    # Built lazily in each pool process: engines and DB connections must not cross a fork.
    global _state
    if _state is None or _state.pid != os.getpid():
        _state = _build_state(settings)
    ctx = _state.context
    ctx.deidentifier = refresh_deidentifier(ctx.deidentifier, _state.watcher)
    return ctx


def _limit_memory(limit_mb: int) -> None:
    # An address-space cap turns a decompression bomb into a MemoryError in its own job.
    limit = limit_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def make_worker_app(settings: Settings) -> Celery:
    app = make_celery(settings)
    # A job that hangs (a decoder loop, OCR on a huge image) is killed with its batch and
    # retried by the sweeper; retried jobs run one at a time, so after three attempts only
    # the job that hangs is quarantined as worker_lost.
    app.conf.task_time_limit = settings.job_time_limit_s

    @worker_process_init.connect(weak=False)
    def _init_child(**_kwargs: object) -> None:
        _limit_memory(settings.job_memory_limit_mb)

    @app.task(name=PROCESS_JOB, bind=False, acks_late=True, reject_on_worker_lost=True)
    def process(job_id: int) -> str:
        return _run(settings, [int(job_id)])

    @app.task(name=PROCESS_JOBS, bind=False, acks_late=True, reject_on_worker_lost=True)
    def process_batch(job_ids: list[int]) -> str:
        return _run(settings, [int(job_id) for job_id in job_ids])

    return app


def _run(settings: Settings, job_ids: list[int]) -> str:
    results = process_jobs(_context_for(settings), job_ids)
    summary = _summary(results)
    log.info("jobs %s: %s", ",".join(map(str, job_ids)), summary)
    return summary


def _summary(results: dict[int, JobResult]) -> str:
    counts = {kind: 0 for kind in JobResult}
    for result in results.values():
        counts[result] += 1
    return ", ".join(f"{n} {kind.value}" for kind, n in counts.items() if n) or "no jobs"


def run_worker(settings: Settings, *, concurrency: int | None = None) -> None:
    # tesseract's OpenMP threads fight each other across pool processes; one each is faster.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    app = make_worker_app(settings)
    check_safe(app)
    # Fail at start, not on the first job, when the profile or the key is unusable.
    startup = _build_state(settings)
    startup.context.deidentifier.warm_up()
    global _prebuilt
    _prebuilt = startup.context.deidentifier
    audit.record(startup.context.sessions, audit.application_activity("worker", started=True))
    worker = app.Worker(
        # Only this node's queue: its jobs' originals are in this node's spool, no other's.
        queues=[node_queue(settings.node)],
        concurrency=concurrency or settings.worker_concurrency,
        pool="prefork",
        loglevel=settings.log_level,
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
    )
    worker.start()
    audit.record(startup.context.sessions, audit.application_activity("worker", started=False))
    raise SystemExit(worker.exitcode)
