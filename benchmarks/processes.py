"""The processes a throughput run drives: dcmtk senders, Amana components started and
stopped as whole process groups, and the wait for every job to finish."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from benchmarks.report import REPO
from tests.support.services import free_port

ENV = dict(os.environ, TCP_NODELAY="1")
PDU = "131072"


def associations(parallel: int) -> list[int]:
    return [1] if parallel <= 1 else [1, parallel]


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 'es' if word.endswith('s') else 's'}"


def send(port: int, files: list[Path], *, parallel: int = 1) -> float:
    """storescu in `parallel` associations; returns seconds until all answered."""
    chunks = [files[i::parallel] for i in range(parallel)]
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            ["storescu", "-aec", "AMANA", "-pdu", PDU, "127.0.0.1", str(port), *map(str, c)],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for c in chunks
        if c
    ]
    failures = []
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            failures.append(err.decode(errors="replace")[-400:])
    if failures:
        raise RuntimeError(f"storescu failed: {failures[0]}")
    return time.monotonic() - start


class Service:
    """A process we start in a session of its own, logged to a file, stopped as a group
    (so that whatever it forked goes with it)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                args,
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def tail(self, chars: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def check_alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise RuntimeError(f"{self.log.name} exited with {code}:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything left in its group
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


@contextmanager
def services(*started: Service) -> Iterator[None]:
    try:
        yield
    finally:
        for service in started:
            service.stop()


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# Roles of Amana's processes, from their command line (pool processes fork from theirs).
_ROLES = ("receive", "worker", "api", "run")


def _role(pid: str, comm: str) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return comm
    words = [a.decode(errors="replace") for a in argv if a]
    if "amana.cli" in words:
        after = words[words.index("amana.cli") + 1 :]
        for word in after:
            if word in _ROLES:
                return word
    if "benchmarks.bare_scp" in words:
        return "pynetdicom"
    return comm


def cpu_by_role(*started: Service) -> dict[str, float]:
    """CPU seconds (user + system) so far of every live process in the services' sessions,
    with the children each has reaped, summed by role ("receive", "worker", "api", "run",
    or the command's name). Differences of two readings give a run's CPU: a process that
    ended between them is counted in its parent's reaped-children time."""
    sessions = {service.proc.pid for service in started}
    totals: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        # fields[0] is field 3 of proc(5): session is 6, utime..cstime are 14..17
        if int(fields[3]) not in sessions:
            continue
        ticks = sum(int(f) for f in fields[11:15])
        role = _role(entry.name, comm)
        totals[role] = totals.get(role, 0.0) + ticks / _TICK
    return totals


def cpu_ms_per_instance(
    before: dict[str, float], after: dict[str, float], instances: int
) -> dict[str, float]:
    """Milliseconds of CPU per instance by role between two readings, and their total."""
    roles = sorted(set(before) | set(after))
    per = {
        role: round((after.get(role, 0.0) - before.get(role, 0.0)) * 1000 / instances, 2)
        for role in roles
    }
    per = {role: ms for role, ms in per.items() if ms > 0}
    per["total"] = round(sum(per.values()), 2)
    return per


def amana(env: dict[str, str], log: Path, *args: str) -> Service:
    return Service([sys.executable, "-m", "amana.cli", *args], env, log)


def cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "amana.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"amana {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-1500:]}")


def amana_env(home: Path, receiver_processes: int | None = None, **extra: str) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    env = dict(ENV)
    env.update(
        AMANA_HOME=str(home),
        AMANA_DICOM_PORT=str(free_port()),
        AMANA_DICOM_HOST="127.0.0.1",
        AMANA_API_PORT=str(free_port()),
        AMANA_KEY_FILE=str(home / "key"),
        AMANA_SPOOL_MIN_FREE_MB="256",
        AMANA_ACCEPT_LOOPBACK="true",
        AMANA_LOG_LEVEL="WARNING",
        # ma-national holds primary CT/MR slices until their series has stopped growing for
        # this long, then samples it (docs/pixels.md): with the default 60 s window the
        # end-to-end rows would time the wait, not the work. 2 s still runs the whole path.
        AMANA_STUDY_STABLE_AFTER_S="2",
        AMANA_SWEEP_INTERVAL_S="1",
    )
    if receiver_processes is not None:
        env["AMANA_RECEIVER_PROCESSES"] = str(receiver_processes)
    env.update(extra)
    return env


def database_url(env: dict[str, str]) -> str:
    return env.get("AMANA_DATABASE_URL") or f"sqlite:///{env['AMANA_HOME']}/catalog.db"


class JobCounter:
    """Jobs by status, read from the catalog the run writes to."""

    def __init__(self, url: str) -> None:
        from archive.catalog.db import make_engine

        self.engine = make_engine(url)

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func, select

        from archive.catalog.models import Job

        with self.engine.connect() as conn:
            rows = conn.execute(select(Job.status, func.count()).group_by(Job.status)).all()
        return {str(getattr(status, "value", status)): int(count) for status, count in rows}

    def close(self) -> None:
        self.engine.dispose()


def listening_sockets(port: int) -> int:
    """Sockets in LISTEN state on `port` (IPv4 and IPv6), from /proc/net: with SO_REUSEPORT
    each receiver process has its own."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def receiver_sockets(env: dict[str, str]) -> int:
    """How many listening sockets an Amana receiver started with `env` opens."""
    if env.get("AMANA_RECEIVER_PROCESSES"):
        return int(env["AMANA_RECEIVER_PROCESSES"])
    from amana.settings import Settings

    return int(getattr(Settings(), "receiver_processes", 1))


def wait_listening(port: int, timeout: float, *watched: Service, sockets: int = 1) -> None:
    """Until `sockets` processes listen on `port`. A receiver's sibling processes start
    after the first one listens: sending before they are up would put their start-up on
    the clock and in the CPU figures, and leave the first process every association.
    Read from /proc/net, never by connecting: every probe connection is an association
    the SCP holds open until it times out, and enough of them exhaust its limit."""
    deadline = time.monotonic() + timeout
    while True:
        for service in watched:
            service.check_alive()
        if listening_sockets(port) >= max(1, sockets):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {sockets} processes listen on port {port}")
        time.sleep(0.1)


def finished_jobs(counts: dict[str, int]) -> int:
    return counts.get("DONE", 0) + counts.get("QUARANTINED", 0)


def wait_finished(
    counter: JobCounter, target: int, watched: Sequence[Service], stall_s: float
) -> dict[str, int]:
    """Jobs by status once `target` jobs are DONE or QUARANTINED; fails when none finishes
    for `stall_s` seconds or a watched process dies."""
    since = time.monotonic()
    last, last_change = -1, since
    while True:
        counts = counter.counts()
        done = finished_jobs(counts)
        if done >= target:
            return counts
        if done != last:
            last, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            raise TimeoutError(
                f"no job finished for {stall_s:g} s ({counts}, "
                f"{time.monotonic() - since:.0f} s into the run)"
            )
        for service in watched:
            service.check_alive()
        time.sleep(0.05)
