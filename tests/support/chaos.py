"""Nothing lost under faults: storescu sends a corpus while the parts of Amana are killed.

    .venv/bin/python -m benchmarks.chaos [--instances 2000]

(tests/integration/test_chaos.py runs it small.)

Starts its own PostgreSQL and Redis (so it can stop and wipe them), `amana receive` and
`amana worker` as separate processes, and sends the corpus with dcmtk's storescu in
batches, re-sending whatever was not acknowledged (as a PACS does). While it sends, it
SIGKILLs the worker twice, restarts Redis with its data wiped, stops Redis for 25 s (and
starts it again on the same port, empty), fills the spool's filesystem below the free-space
threshold for 20 s, stops PostgreSQL for 30 s and SIGKILLs the receiver five times. It ends
by printing sent, re-sent, acknowledged, archived, quarantined (by reason), lost and
duplicated, each fault's time and recovery, the sweeper's re-sends, how long the catalog
took to settle after the last acknowledgement and each component's CPU, and exits non-zero
unless lost = duplicated = 0.

The spool lives on a tmpfs of its own when the run may mount one (root), so "disk nearly
full" is a real filesystem nearly full; otherwise the receiver is restarted with
AMANA_SPOOL_MIN_FREE_MB just above the spool's free space for the fault's duration.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
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
SWEEP_RE = re.compile(r"sweeper: re-sent (\d+) jobs")


class Component:
    """One Amana process, restartable, killed as a whole process group.

    Supervised as compose's `restart: unless-stopped` does: a process that ends by itself
    (the worker exits when PostgreSQL is down while it starts) is started again."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.wanted = False
        self.restarts = 0
        # CPU seconds of the component's processes, added up at each kill and stop (the
        # kernel's count of a process group's members read just before it ends).
        self.cpu_s = 0.0
        self._lock = threading.Lock()
        threading.Thread(target=self._supervise, daemon=True).start()

    def start(self) -> None:
        with self._lock:
            self._start()

    def _start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "amana.cli", *self.args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        self.wanted = True

    def _supervise(self) -> None:
        while True:
            time.sleep(1)
            with self._lock:
                ended = self.wanted and self.proc is not None and self.proc.poll() is not None
                dead = self.proc
            if not ended:
                continue
            time.sleep(2)
            with self._lock:
                # A fault may have killed and restarted it meanwhile: then it is not ours to
                # restart (a second process would run beside the fault's).
                if not (self.wanted and self.proc is dead):
                    continue
                self.restarts += 1
                print(f"{self.name} ended by itself; restarted", flush=True)
                self._start()

    def kill(self) -> None:
        with self._lock:
            self.wanted = False
            if self.proc is not None:
                self.cpu_s += group_cpu_s(self.proc.pid)
                # It may have ended by itself a moment ago (the supervisor reaped it).
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def stop(self) -> None:
        with self._lock:
            self.wanted = False
            proc = self.proc
        if proc is not None and proc.poll() is None:
            self.cpu_s += group_cpu_s(proc.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of the live processes of process group `pgid` (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # After the command: state, ppid, pgrp, ..., utime and stime are fields 14 and 15.
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


@dataclass
class Sender:
    files: list[Path]
    port: int
    batch: int = 50
    acked: set[Path] = field(default_factory=set)
    attempts: int = 0
    # Spread the first sending of the corpus over this long, as a PACS's rate would, so the
    # faults land while it sends (storescu alone sends a batch in about a second).
    send_s: float = 0.0
    offered: int = 0
    failed_batches: int = 0

    def run(self, deadline: float) -> None:
        pending = list(self.files)
        env = dict(os.environ, TCP_NODELAY="1")
        began, first_sends = time.monotonic(), 0
        while pending and time.monotonic() < deadline:
            batch, pending = pending[: self.batch], pending[self.batch :]
            if first_sends < len(self.files):
                due = began + self.send_s * first_sends / len(self.files)
                time.sleep(max(0.0, due - time.monotonic()))
                first_sends += len(batch)
            self.attempts += 1
            self.offered += len(batch)
            # Read as it goes, so that progress (and the faults keyed on it) moves within an
            # association, and a kill lands in the middle of one.
            proc = subprocess.Popen(
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
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert proc.stdout is not None
            current: Path | None = None
            for line in proc.stdout:
                if m := SENT_RE.search(line):
                    current = Path(m.group(1).strip())
                elif OK_RE.search(line) and current is not None:
                    self.acked.add(current)
                    current = None
            returncode = proc.wait(600)
            missing = [f for f in batch if f not in self.acked]
            if missing or returncode != 0:
                self.failed_batches += 1
            if missing:
                pending.extend(missing)  # a PACS retries what was not acknowledged
                time.sleep(1)

    @property
    def progress(self) -> float:
        return len(self.acked) / max(1, len(self.files))

    @property
    def resent(self) -> int:
        return self.offered - len(self.acked)


class SpoolDisk:
    """The spool's filesystem: a small tmpfs of its own when this run may mount one."""

    def __init__(self, mountpoint: Path, size_mb: int) -> None:
        self.mountpoint = mountpoint
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.mounted = (
            size_mb > 0
            and os.geteuid() == 0
            and subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mountpoint)],
                capture_output=True,
            ).returncode
            == 0
        )
        # Beside the spool on the same filesystem, never inside the tree Amana manages.
        self.spool = mountpoint / "spool"
        self.ballast = mountpoint / "ballast"

    def free(self) -> int:
        return shutil.disk_usage(self.mountpoint).free

    def fill_below(self, min_free: int, until: float) -> None:
        """Hold the free space just under `min_free` until `until`: the worker drains the
        spool meanwhile, so the ballast grows to keep the disk nearly full."""
        chunk = b"\0" * (1024 * 1024)
        with self.ballast.open("ab") as out:
            while time.monotonic() < until:
                try:
                    while self.free() > min_free - 4 * len(chunk):
                        out.write(chunk)
                        out.flush()
                except OSError:
                    pass
                time.sleep(0.2)

    def empty(self) -> None:
        self.ballast.unlink(missing_ok=True)

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.mountpoint)], capture_output=True)


class Recovery:
    """How long after a fault ends until both acknowledgements and archiving move again."""

    def __init__(self, sender: Sender, archive: Path, note: Callable[[str], None]) -> None:
        self.sender, self.archive, self.note = sender, archive, note
        self.threads: list[threading.Thread] = []

    def watch(self, fault: str, deadline: float) -> None:
        thread = threading.Thread(target=self._watch, args=(fault, deadline), daemon=True)
        thread.start()
        self.threads.append(thread)

    def _archived(self) -> int:
        return sum(1 for _ in self.archive.rglob("*.dcm")) if self.archive.exists() else 0

    def _watch(self, fault: str, deadline: float) -> None:
        t0, acked0, archived0 = time.monotonic(), len(self.sender.acked), self._archived()
        acked_at = archived_at = None
        while time.monotonic() < deadline and (acked_at is None or archived_at is None):
            now = time.monotonic()
            if acked_at is None and (
                len(self.sender.acked) > acked0 or len(self.sender.acked) == len(self.sender.files)
            ):
                acked_at = now
            if archived_at is None and self._archived() > archived0:
                archived_at = now
            time.sleep(0.5)
        parts = [
            f"acknowledging again after {acked_at - t0:.1f} s" if acked_at else "no ack seen",
            f"archiving again after {archived_at - t0:.1f} s" if archived_at else "no archive seen",
        ]
        self.note(f"recovered from {fault}: {', '.join(parts)}")


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
    parser.add_argument("--broker-outage-s", type=float, default=25.0)
    parser.add_argument("--receiver-kills", type=int, default=5)
    parser.add_argument("--disk-full-s", type=float, default=20.0, help="0: no disk-full fault")
    parser.add_argument("--spool-tmpfs-mb", type=int, default=1024)
    parser.add_argument("--send-s", type=float, default=240.0, help="pace of the first sending")
    parser.add_argument("--batch", type=int, default=50, help="instances per association")
    parser.add_argument("--timeout-s", type=float, default=1800.0)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="amana-chaos-"))
    print(f"work dir {work}")
    files = make_corpus(work / "corpus", instances=args.instances, studies=args.studies)
    pg, redis = ThrowawayPostgres(), ThrowawayRedis()
    components: list[Component] = []
    disk = SpoolDisk(work / "spooldisk", args.spool_tmpfs_mb if args.disk_full_s > 0 else 0)
    min_free_mb = 64
    # Whatever happens, the servers and the Amana processes of this run end with it.
    try:
        pg.start()
        redis.start()
        env = dict(os.environ)
        env.update(
            AMANA_HOME=str(work / "home"),
            AMANA_SPOOL_DIR=str(disk.spool),
            # Beside the spool: quarantining renames out of the spool, which fails across
            # filesystems (archive/fsio.py durable_move; see docs/reliability.md).
            AMANA_QUARANTINE_DIR=str(disk.mountpoint / "quarantine"),
            AMANA_DATABASE_URL=f"{pg.url}/postgres",
            AMANA_BROKER_URL=redis.url,
            AMANA_DICOM_PORT=str(free_port()),
            AMANA_DICOM_HOST="127.0.0.1",
            AMANA_KEY_FILE=str(work / "key"),
            AMANA_STALE_AFTER_S="20",
            AMANA_SWEEP_INTERVAL_S="2",
            # Sampled CT series are decided once they stop growing (as studies complete).
            AMANA_STUDY_STABLE_AFTER_S="5",
            AMANA_SPOOL_MIN_FREE_MB=str(min_free_mb),
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
        sender = Sender(files, port, batch=args.batch, send_s=args.send_s)
        # A daemon: an interrupted run must not keep re-sending to a receiver that is gone.
        sending = threading.Thread(target=sender.run, args=(deadline,), daemon=True)
        started = time.monotonic()
        sending.start()
        events: list[str] = []

        def note(text: str) -> None:
            events.append(f"{time.monotonic() - started:7.1f}s {text}")
            print(events[-1], flush=True)

        recovery = Recovery(sender, work / "home" / "archive", note)

        def kill_worker() -> None:
            worker.kill()
            note("SIGKILL worker")
            time.sleep(2)
            worker.start()
            recovery.watch("worker kill", deadline)

        def kill_receiver(n: int) -> Callable[[], None]:
            def fault() -> None:
                receiver.kill()
                note(f"SIGKILL receiver ({n} of {args.receiver_kills})")
                time.sleep(2)
                receiver.start()
                recovery.watch(f"receiver kill {n}", deadline)

            return fault

        def wipe_redis() -> None:
            redis.stop()
            redis.start()
            note("Redis restarted with its data wiped")
            recovery.watch("Redis wipe", deadline)

        def broker_outage() -> None:
            redis.stop()
            note(f"Redis stopped for {args.broker_outage_s:.0f} s")
            time.sleep(args.broker_outage_s)
            redis.start()  # same port, nothing kept: the worst case
            note("Redis started again, empty")
            recovery.watch("broker outage", deadline)

        def pg_outage() -> None:
            pg.stop()
            note(f"PostgreSQL stopped for {args.pg_outage_s:.0f} s")
            time.sleep(args.pg_outage_s)
            pg.start()
            note("PostgreSQL started")
            recovery.watch("PostgreSQL outage", deadline)

        def disk_full() -> None:
            until = time.monotonic() + args.disk_full_s
            if disk.mounted:
                note(f"spool tmpfs filled below {min_free_mb} MB free for {args.disk_full_s:.0f} s")
                disk.fill_below(min_free_mb * 1024 * 1024, until)
                disk.empty()
            else:
                receiver.stop()
                receiver.env = dict(env, AMANA_SPOOL_MIN_FREE_MB=str(disk.free() // 2**20 + 1024))
                receiver.start()
                note(
                    "receiver restarted with its free-space threshold above the spool's "
                    f"free space for {args.disk_full_s:.0f} s"
                )
                time.sleep(max(0.0, until - time.monotonic()))
                receiver.stop()
                receiver.env = env
                receiver.start()
            note("spool space back")
            recovery.watch("disk nearly full", deadline)

        faults: list[tuple[float, Callable[[], None]]] = [
            (0.08, kill_worker),
            (0.20, wipe_redis),
            (0.40, kill_worker),
            (0.55, pg_outage),
        ]
        if args.broker_outage_s > 0:
            faults.append((0.28, broker_outage))
        if args.disk_full_s > 0:
            faults.append((0.47, disk_full))
        for n in range(args.receiver_kills):
            # Spread over the sending, between the other faults.
            faults.append((0.14 + 0.72 * n / max(1, args.receiver_kills), kill_receiver(n + 1)))
        for threshold, fault in sorted(faults, key=lambda f: f[0]):
            when(lambda: sender.progress, threshold, deadline)
            fault()
        sending.join()
        sent_at = time.monotonic()
        note(
            f"sender finished: {len(sender.acked)} acknowledged, {sender.resent} re-sent, "
            f"in {sender.attempts} batches ({sender.failed_batches} not wholly acknowledged)"
        )

        expected = expected_sop_uids(sorted(sender.acked), work / "key", "ma-national")
        report = wait_for_settlement(env, set(expected.values()), work, deadline)
        state = "settled" if report.settled else "NOT settled (deadline)"
        note(f"{state}, {time.monotonic() - sent_at:.0f} s after the sender finished")
    finally:
        for component in components:
            component.stop()
        pg.destroy()
        redis.destroy()
        disk.unmount()
        # The logs stay for a look afterwards; the instances (a corpus, a spool and an
        # archive: 150 MB for the test's run, 2 GB at full size) go.
        for bulky in ("corpus", "home", "spooldisk"):
            shutil.rmtree(work / bulky, ignore_errors=True)

    archived = report.archived
    lost = len(sender.acked) - archived - report.quarantined
    print()
    spool_disk = f"tmpfs {args.spool_tmpfs_mb} MB" if disk.mounted else "shared"
    print(f"spool disk    {spool_disk}")
    print(f"sent          {len(files)}")
    print(f"re-sent       {sender.resent}")
    print(f"acknowledged  {len(sender.acked)}")
    print(f"archived      {archived}")
    print(f"quarantined   {report.quarantined}")
    print(f"lost          {lost}")
    print(f"duplicated    {report.duplicated}")
    for reason, count in sorted(report.reasons.items()):
        print(f"  quarantined as {reason}: {count}")
    sent = [int(n) for n in SWEEP_RE.findall((work / "receiver.log").read_text(errors="replace"))]
    print(
        f"sweeper       sent {sum(sent)} job ids in {sum(1 for n in sent if n)} passes "
        "(series samples, re-sends after a broker outage, stale jobs)"
    )
    print(f"deliveries    {report.duplicate_jobs} jobs ended as duplicates (instance re-sent)")
    states = ", ".join(f"{n} {state}" for state, n in sorted(report.series.items())) or "none"
    print(f"series        {states}; {report.examined_in_full} instances examined in full")
    print("events")
    for event in events:
        print(f"  {event}")
    print(f"restarted     worker {worker.restarts}, receiver {receiver.restarts} (ended by itself)")
    print(f"elapsed       {time.monotonic() - started:.0f} s")
    print(f"CPU           worker {worker.cpu_s:.0f} s, receiver {receiver.cpu_s:.0f} s")
    print(f"load average  {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    ok = lost == 0 and report.duplicated == 0 and len(sender.acked) == len(files)
    return 0 if ok else 1


@dataclass
class Settlement:
    archived: int
    quarantined: int
    duplicated: int
    settled: bool  # every job ended before the deadline
    reasons: dict[str, int]  # quarantine reason codes
    duplicate_jobs: int  # jobs that ended DONE as a duplicate of an archived instance
    series: dict[str, int]  # sampled series by state (CLEAN, TEXT, ...)
    examined_in_full: int  # archived instances whose pixels were examined, not only screened


def wait_for_settlement(
    env: dict[str, str], expected: set[str], work: Path, deadline: float
) -> Settlement:
    from sqlalchemy import func, select

    from archive.catalog.db import make_engine, make_sessionmaker
    from archive.catalog.models import Instance, Job, JobStatus, QuarantineEntry, SeriesSampling

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
        settled = open_jobs == 0 and archived + (quarantined or 0) >= len(expected)
        if settled or time.monotonic() > deadline:
            break
        time.sleep(2)
    with sessions() as session:
        reasons = {
            str(reason): int(count)
            for reason, count in session.execute(
                select(QuarantineEntry.reason, func.count()).group_by(QuarantineEntry.reason)
            ).all()
        }
        duplicate_jobs = int(
            session.scalar(select(func.count()).select_from(Job).where(Job.duplicate)) or 0
        )
        series = {
            str(state.value): int(count)
            for state, count in session.execute(
                select(SeriesSampling.state, func.count()).group_by(SeriesSampling.state)
            ).all()
        }
        examined = int(
            session.scalar(
                select(func.count())
                .select_from(Instance)
                .where(Instance.pixel_actions.like("examined:%"))
                .where(Instance.pixel_actions.not_like("%screened:no_ink%"))
            )
            or 0
        )
    files_on_disk = sum(1 for _ in archive.rglob("*.dcm"))
    duplicated = (len(sop_uids) - len(set(sop_uids))) + max(0, files_on_disk - len(sop_uids))
    return Settlement(
        archived,
        int(quarantined or 0),
        duplicated,
        settled,
        reasons,
        duplicate_jobs,
        series,
        examined,
    )


if __name__ == "__main__":
    raise SystemExit(main())
