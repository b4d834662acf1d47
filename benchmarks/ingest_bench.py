"""Ingest throughput against dcmtk's storescp, measured in the same run.

    .venv/bin/python -m benchmarks.ingest_bench [--instances 2000] [--skip-e2e]

1. baseline: storescu -> storescp writing to disk (TCP_NODELAY, large PDU, bit-preserving);
2. Amana's receiver alone (storescu -> `amana receive`, spool + job rows only);
3. end to end: storescu -> `amana run` (embedded SQLite catalog and queue) until the last
   catalog row; then PostgreSQL + Redis with 1 and with 2 worker processes.
Prints instances/s and MB/s for each and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.corpus import make_corpus
from tests.services import free_port, postgres_server, redis_server, wait_port

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, TCP_NODELAY="1")
PDU = "131072"


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
    ]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"storescu failed: {err.decode(errors='replace')[-400:]}")
    return time.monotonic() - start


def baseline(files: list[Path], work: Path, parallel: int) -> float:
    out = work / "storescp"
    out.mkdir()
    port = free_port()
    scp = subprocess.Popen(
        ["storescp", "-aet", "AMANA", "-pdu", PDU, "--bit-preserving", "-od", str(out), str(port)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port("127.0.0.1", port)
        return send(port, files, parallel=parallel)
    finally:
        scp.terminate()
        scp.wait()
        shutil.rmtree(out, ignore_errors=True)


def amana_env(home: Path, **extra: str) -> dict[str, str]:
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
    )
    env.update(extra)
    return env


def start(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "amana.cli", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def cli(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "amana.cli", *args],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
    )


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def receiver_only(files: list[Path], work: Path, parallel: int) -> float:
    env = amana_env(work / "recv")
    cli(env, "db", "upgrade")
    proc = start(env, "receive", "--no-sweeper")
    try:
        wait_port("127.0.0.1", int(env["AMANA_DICOM_PORT"]), 60)
        return send(int(env["AMANA_DICOM_PORT"]), files, parallel=parallel)
    finally:
        stop(proc)


def archived_count(env: dict[str, str]) -> int:
    from sqlalchemy import func, select

    from archive.db import make_engine
    from archive.models import Job, JobStatus

    engine = make_engine(
        env["AMANA_DATABASE_URL"]
        if "AMANA_DATABASE_URL" in env
        else f"sqlite:///{env['AMANA_HOME']}/catalog.db"
    )
    try:
        with engine.connect() as conn:
            return int(
                conn.scalar(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.status.in_([JobStatus.DONE, JobStatus.QUARANTINED]))
                )
                or 0
            )
    finally:
        engine.dispose()


def end_to_end(
    files: list[Path], env: dict[str, str], commands: list[list[str]], parallel: int
) -> float:
    from amana.keys import ensure_key

    ensure_key(Path(env["AMANA_KEY_FILE"]))
    cli(env, "db", "upgrade")
    procs = [start(env, *c) for c in commands]
    try:
        wait_port("127.0.0.1", int(env["AMANA_DICOM_PORT"]), 90)
        time.sleep(3)  # let workers connect before the clock starts
        t0 = time.monotonic()
        send(int(env["AMANA_DICOM_PORT"]), files, parallel=parallel)
        while archived_count(env) < len(files):
            if time.monotonic() - t0 > 3600:
                raise TimeoutError("end-to-end run did not finish")
            time.sleep(0.25)
        return time.monotonic() - t0
    finally:
        stop(*procs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--parallel", type=int, default=2, help="associations for the receiver")
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="amana-bench-"))
    files = make_corpus(work / "corpus", instances=args.instances)
    mb = sum(f.stat().st_size for f in files) / 1e6
    n = len(files)
    print(f"corpus: {n} CT instances, {mb:.0f} MB, {os.cpu_count()} cores")
    results: list[tuple[str, float]] = []
    base = baseline(files, work, 1)
    results.append(("dcmtk storescu -> storescp (1 association)", base))
    base_par = baseline(files, work, args.parallel)
    results.append((f"dcmtk storescu -> storescp ({args.parallel} associations)", base_par))
    results.append(("amana receive (1 association)", receiver_only(files, work, 1)))
    results.append(
        (f"amana receive ({args.parallel} associations)", receiver_only(files, work, args.parallel))
    )
    if not args.skip_e2e:
        home = work / "embedded"
        env = amana_env(home)
        results.append(
            (
                "end to end: amana run (SQLite, 2 worker processes)",
                end_to_end(files, env, [["run"]], 1),
            )
        )
        with postgres_server() as pg, redis_server() as redis:
            from tests.services import fresh_database

            for workers in (1, 2):
                with fresh_database(pg) as db:
                    env = amana_env(
                        work / f"pg{workers}", AMANA_DATABASE_URL=db, AMANA_BROKER_URL=f"{redis}/14"
                    )
                    import redis as redis_lib

                    redis_lib.Redis.from_url(f"{redis}/14").flushdb()
                    seconds = end_to_end(
                        files,
                        env,
                        [["receive"], ["worker", "--concurrency", str(workers)]],
                        1,
                    )
                    results.append(
                        (f"end to end: PostgreSQL + Redis, {workers} worker(s)", seconds)
                    )
    print(f"\n{'run':58} {'inst/s':>8} {'MB/s':>7} {'vs baseline':>11}")
    for name, seconds in results:
        rate = n / seconds
        print(f"{name:58} {rate:8.1f} {mb / seconds:7.1f} {base / seconds:10.2f}x")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
