"""Backlog folders into the spool, through the same jobs and queue as network transfers."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from archive.work.jobs import create_job
from archive.work.publish import enqueue_after_commit
from ingest.spool import Spool

PART10_MAGIC_OFFSET = 128


def iter_files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def looks_like_part10(path: Path) -> bool:
    """A cheap check without parsing: the DICM magic after the 128-byte preamble."""
    try:
        with path.open("rb") as fh:
            head = fh.read(PART10_MAGIC_OFFSET + 4)
    except OSError:
        return False
    return head[PART10_MAGIC_OFFSET:] == b"DICM"


class ImportLedger:
    """Content digests of files already queued, so an interrupted import resumes where it
    stopped and a second run queues nothing twice. Digests of content reveal nothing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.seen: set[str] = set()
        if path.exists():
            self.seen = {line.strip() for line in path.read_text().splitlines() if line.strip()}

    def add(self, digest: str) -> None:
        with self.path.open("a") as fh:
            fh.write(digest + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.seen.add(digest)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ImportReport:
    queued: int = 0
    already_imported: int = 0
    # Shown to the operator who owns the folder; never logged (names may carry PHI).
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def import_folder(
    root: Path,
    *,
    spool: Spool,
    sessions: sessionmaker[Session],
    ledger: ImportLedger,
    progress: Callable[[int], None] = lambda _n: None,
    source_id: int | None = None,
    calling_ae: str | None = None,
    node: str | None = None,
) -> ImportReport:
    """Copy each new Part 10 file into the spool and create its job; the job ids reach the
    queue through the sink attached to `sessions` (`attach_job_sink`), after each commit.
    With `source_id` (a registered source, `import --source`) the jobs are attributed to it
    and get its profile and region."""
    report = ImportReport()
    for index, path in enumerate(iter_files(root)):
        progress(index)
        if not looks_like_part10(path):
            report.skipped.append((path, "not a DICOM Part 10 file (no DICM marker)"))
            continue
        digest = file_digest(path)
        if digest in ledger.seen:
            report.already_imported += 1
            continue
        name, size = spool.copy_in(path)
        with sessions.begin() as session:
            job_id = create_job(
                session,
                spool_name=name,
                size_bytes=size,
                calling_ae=calling_ae,
                source_kind="import",
                source_id=source_id,
                node=node,
            )
            enqueue_after_commit(session, [job_id])
        ledger.add(digest)
        report.queued += 1
    return report
