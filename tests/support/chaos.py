"""Nothing lost under faults: storescu sends a corpus while the parts of Amana are killed.

    .venv/bin/python -m benchmarks.chaos [--instances 2000]

(tests/integration/test_chaos.py runs it small.)

Starts its own PostgreSQL and Redis (so it can stop and wipe them), `amana receive` and
`amana worker` as separate processes, and sends the corpus with dcmtk's storescu in
batches, re-sending whatever was not acknowledged (as a PACS does). While it sends, it
SIGKILLs the worker twice, restarts Redis with its data wiped, stops PostgreSQL for 30 s
and SIGKILLs the receiver once. It ends by printing sent, acknowledged, archived,
quarantined, lost and duplicated, and exits non-zero unless lost = duplicated = 0.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.corpus import make_corpus
from tests.support.services import ThrowawayPostgres, ThrowawayRedis, free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
SENT_RE = re.compile(r"Sending file: (.+)$")
OK_RE = re.compile(r"Received Store Response \(Success\)")


class Component:
    """One Amana process, restartable, killed as a whole process group."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "amana.cli", *self.args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Sender:
    files: list[Path]
    port: int
    batch: int = 50
    acked: set[Path] = field(default_factory=set)
    attempts: int = 0

    def run(self, deadline: float) -> None:
        pending = list(self.files)
        env = dict(os.environ, TCP_NODELAY="1")
        while pending and time.monotonic() < deadline:
            batch, pending = pending[: self.batch], pending[self.batch :]
            self.attempts += 1
            result = subprocess.run(
                [
                    "storescu",
                    "-v",
                    "-aet",
                    "CHAOSPACS",
                    "-aec",
                    "AMANA",
                    "127.0.0.1",
                    str(self.port),
                    *map(str, batch),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            current: Path | None = None
            for line in (result.stdout + result.stderr).splitlines():
                if m := SENT_RE.search(line):
                    current = Path(m.group(1).strip())
                elif OK_RE.search(line) and current is not None:
                    self.acked.add(current)
                    current = None
            missing = [f for f in batch if f not in self.acked]
            if missing:
                pending.extend(missing)  # a PACS retries what was not acknowledged
                time.sleep(1)

    @property
    def progress(self) -> float:
        return len(self.acked) / max(1, len(self.files))


def expected_sop_uids(files: list[Path], key_file: Path, profile: str) -> dict[Path, str]:
    from amana.keys import load_key
    from amana.settings import shipped_profiles_dir
    from anonymizer.engine import Deidentifier, load_profile

    engine = Deidentifier(load_profile(profile, shipped_profiles_dir()), load_key(key_file))
    return {f: engine.deidentify(f.read_bytes()).facts.sop_instance_uid for f in files}


def when(progress: Callable[[], float], threshold: float, deadline: float) -> None:
    while progress() < threshold and time.monotonic() < deadline:
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--pg-outage-s", type=float, default=30.0)
    parser.add_argument("--timeout-s", type=float, default=1800.0)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="amana-chaos-"))
    print(f"work dir {work}")
    files = make_corpus(work / "corpus", instances=args.instances, studies=args.studies)
    pg, redis = ThrowawayPostgres(), ThrowawayRedis()
    components: list[Component] = []
    # Whatever happens, the servers and the Amana processes of this run end with it.
    try:
        pg.start()
        redis.start()
        env = dict(os.environ)
        env.update(
            AMANA_HOME=str(work / "home"),
            AMANA_DATABASE_URL=f"{pg.url}/postgres",
            AMANA_BROKER_URL=redis.url,
            AMANA_DICOM_PORT=str(free_port()),
            AMANA_DICOM_HOST="127.0.0.1",
            AMANA_KEY_FILE=str(work / "key"),
            AMANA_STALE_AFTER_S="20",
            AMANA_SWEEP_INTERVAL_S="2",
            # Sampled CT series are decided once they stop growing (as studies complete).
            AMANA_STUDY_STABLE_AFTER_S="5",
            AMANA_SPOOL_MIN_FREE_MB="64",
            AMANA_ACCEPT_LOOPBACK="true",
        )
        from amana.keys import ensure_key

        ensure_key(work / "key")
        subprocess.run(
            [sys.executable, "-m", "amana.cli", "db", "upgrade"],
            env=env,
            check=True,
            cwd=REPO,
            capture_output=True,
        )
        port = int(env["AMANA_DICOM_PORT"])
        receiver = Component("receiver", ["receive"], env, work / "receiver.log")
        worker = Component("worker", ["worker"], env, work / "worker.log")
        components += [receiver, worker]
        receiver.start()
        worker.start()
        wait_port("127.0.0.1", port, 60)

        deadline = time.monotonic() + args.timeout_s
        sender = Sender(files, port)
        sending = threading.Thread(target=sender.run, args=(deadline,))
        started = time.monotonic()
        sending.start()
        events: list[str] = []

        def note(text: str) -> None:
            events.append(f"{time.monotonic() - started:7.1f}s {text}")
            print(events[-1], flush=True)

        when(lambda: sender.progress, 0.10, deadline)
        worker.kill()
        note("SIGKILL worker")
        time.sleep(2)
        worker.start()
        when(lambda: sender.progress, 0.25, deadline)
        redis.stop()
        redis.start()
        note("Redis restarted with its data wiped")
        when(lambda: sender.progress, 0.40, deadline)
        worker.kill()
        note("SIGKILL worker")
        time.sleep(2)
        worker.start()
        when(lambda: sender.progress, 0.55, deadline)
        pg.stop()
        note(f"PostgreSQL stopped for {args.pg_outage_s:.0f} s")
        time.sleep(args.pg_outage_s)
        pg.start()
        note("PostgreSQL started")
        when(lambda: sender.progress, 0.70, deadline)
        receiver.kill()
        note("SIGKILL receiver")
        time.sleep(2)
        receiver.start()
        sending.join()
        note(f"sender finished: {len(sender.acked)} acknowledged in {sender.attempts} batches")

        expected = expected_sop_uids(sorted(sender.acked), work / "key", "ma-national")
        report = wait_for_settlement(env, set(expected.values()), work, deadline)
    finally:
        for component in components:
            component.stop()
        pg.destroy()
        redis.destroy()

    archived = report["archived"]
    lost = len(sender.acked) - archived - report["quarantined"]
    print()
    print(f"sent          {len(files)}")
    print(f"acknowledged  {len(sender.acked)}")
    print(f"archived      {archived}")
    print(f"quarantined   {report['quarantined']}")
    print(f"lost          {lost}")
    print(f"duplicated    {report['duplicated']}")
    print(f"elapsed       {time.monotonic() - started:.0f} s")
    ok = lost == 0 and report["duplicated"] == 0 and len(sender.acked) == len(files)
    return 0 if ok else 1


def wait_for_settlement(
    env: dict[str, str], expected: set[str], work: Path, deadline: float
) -> dict[str, int]:
    from sqlalchemy import func, select

    from archive.catalog.db import make_engine, make_sessionmaker
    from archive.catalog.models import Instance, Job, JobStatus

    sessions = make_sessionmaker(make_engine(env["AMANA_DATABASE_URL"]))
    archive = Path(env["AMANA_HOME"]) / "archive"
    while True:
        with sessions() as session:
            open_jobs = session.scalar(
                select(func.count())
                .select_from(Job)
                # HELD: slices of a series waiting for its sampling decision.
                .where(Job.status.in_([JobStatus.RECEIVED, JobStatus.RUNNING, JobStatus.HELD]))
            )
            sop_uids = list(session.scalars(select(Instance.sop_uid)))
            quarantined = session.scalar(
                select(func.count()).select_from(Job).where(Job.status == JobStatus.QUARANTINED)
            )
        archived = len(expected & set(sop_uids))
        if (open_jobs == 0 and archived + (quarantined or 0) >= len(expected)) or (
            time.monotonic() > deadline
        ):
            break
        time.sleep(2)
    files_on_disk = sum(1 for _ in archive.rglob("*.dcm"))
    duplicated = (len(sop_uids) - len(set(sop_uids))) + max(0, files_on_disk - len(sop_uids))
    return {"archived": archived, "quarantined": int(quarantined or 0), "duplicated": duplicated}


if __name__ == "__main__":
    raise SystemExit(main())
