"""The worker pipeline without a queue: a context as a worker process builds it, and jobs
put in the spool and the catalog as the receiver does."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from amana.keys import ensure_key
from anonymizer.engine import Deidentifier, load_profile
from archive.work.jobs import create_job
from archive.work.pipeline import WorkerContext
from ingest.spool import Spool
from tests.paths import REPO_ROOT


def worker_context(sessions: sessionmaker[Session], root: Path) -> WorkerContext:
    """The ma-national profile with a key, spool, archive and quarantine under `root`."""
    key = ensure_key(root / "secrets" / "key")
    return WorkerContext(
        sessions=sessions,
        deidentifier=Deidentifier(load_profile("ma-national", REPO_ROOT / "profiles"), key),
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
