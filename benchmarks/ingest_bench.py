"""Ingest throughput against dcmtk's storescp, measured in the same run.

    .venv/bin/python -m benchmarks.ingest_bench [--instances 2000] [--parallel 4] [--skip-e2e]

1. baseline: storescu -> storescp writing to disk (TCP_NODELAY, 128 KiB PDU,
   bit-preserving), with 1 and with --parallel associations;
2. Amana's receiver alone (storescu -> `amana receive`: spool, job rows, queue messages),
   with 1 and with --parallel associations;
3. end to end: storescu -> `amana run` (embedded SQLite catalog and queue) until every job
   is DONE or QUARANTINED; then PostgreSQL + Redis (`amana receive` + `amana worker`) with
   1 and with 2 worker processes; each with 1 and with --parallel associations.
Prints instances/s and MB/s for each and the ratio to storescp with 1 association.
`python -m benchmarks` runs this together with the de-identification and OCR parts.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.processes import (
    ENV,
    PDU,
    JobCounter,
    Service,
    amana,
    amana_env,
    associations,
    cli,
    cpu_by_role,
    cpu_ms_per_instance,
    database_url,
    finished_jobs,
    plural,
    receiver_sockets,
    send,
    services,
    wait_finished,
    wait_listening,
)
from benchmarks.report import Result, print_table
from tests.support.corpus import Corpus, build_corpus, make_ct
from tests.support.services import free_port

BASELINE = "storescp (1 association)"
# The two baselines every Amana ingest row is divided by, with as many associations.
STORESCP = "storescp"
PYNETDICOM = "pynetdicom"
Cpu = dict[str, float]
PARTS = ("baseline", "receiver", "e2e", "pg", "backlog")


# --- processes -----------------------------------------------------------------------


# --- the three kinds of run ----------------------------------------------------------


def baseline(files: list[Path], work: Path, parallel: int) -> tuple[float, Cpu]:
    """storescu -> storescp writing each instance to disk as received; (seconds, CPU ms
    per instance)."""
    out = work / f"storescp-{parallel}"
    out.mkdir(parents=True)
    port = free_port()
    scp = Service(
        ["storescp", "-aet", "AMANA", "-pdu", PDU, "--bit-preserving", "-od", str(out), str(port)],
        ENV,
        work / f"storescp-{parallel}.log",
    )
    try:
        with services(scp):
            wait_listening(port, 30, scp)
            before = cpu_by_role(scp)
            seconds = send(port, files, parallel=parallel)
            cpu = cpu_ms_per_instance(before, cpu_by_role(scp), len(files))
        stored = sum(1 for _ in out.iterdir())
        if stored != len(files):
            raise RuntimeError(f"storescp stored {stored} of {len(files)} instances")
        return seconds, cpu
    finally:
        shutil.rmtree(out, ignore_errors=True)


def bare_pynetdicom(files: list[Path], work: Path, parallel: int) -> tuple[float, Cpu]:
    """storescu -> a bare pynetdicom SCP (benchmarks/bare_scp.py: Amana's presentation
    contexts, each dataset written to a file as it arrives, renamed, no fsync)."""
    out = work / f"pynetdicom-{parallel}"
    port = free_port()
    scp = Service(
        [sys.executable, "-m", "benchmarks.bare_scp", str(port), str(out)],
        ENV,
        work / f"pynetdicom-{parallel}.log",
    )
    try:
        with services(scp):
            wait_listening(port, 60, scp)
            before = cpu_by_role(scp)
            seconds = send(port, files, parallel=parallel)
            cpu = cpu_ms_per_instance(before, cpu_by_role(scp), len(files))
        stored = sum(1 for f in out.iterdir() if f.suffix == ".dcm")
        if stored != len(files):
            raise RuntimeError(f"the pynetdicom SCP stored {stored} of {len(files)} instances")
        return seconds, cpu
    finally:
        shutil.rmtree(out, ignore_errors=True)


def receiver_only(
    files: list[Path], work: Path, parallel: int, receiver_processes: int | None = None
) -> tuple[float, Cpu]:
    """storescu -> `amana receive` (no sweeper): spool + committed job row per instance.
    The seconds are until storescu got every answer; the CPU is counted until every job row
    is committed too (the rows follow the answers, ingest/job_batcher.py)."""
    home = work / f"recv-{parallel}"
    env = amana_env(home, receiver_processes)
    cli(env, "db", "upgrade")
    port = int(env["AMANA_DICOM_PORT"])
    receiver = amana(env, work / f"recv-{parallel}.log", "receive", "--no-sweeper")
    counter = JobCounter(database_url(env))
    try:
        with services(receiver):
            wait_listening(port, 90, receiver, sockets=receiver_sockets(env))
            before = cpu_by_role(receiver)
            seconds = send(port, files, parallel=parallel)
            deadline = time.monotonic() + 120
            while (jobs := sum(counter.counts().values())) < len(files):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            cpu = cpu_ms_per_instance(before, cpu_by_role(receiver), len(files))
        if jobs != len(files):
            raise RuntimeError(f"the receiver recorded {jobs} jobs for {len(files)} instances")
        return seconds, cpu
    finally:
        counter.close()
        shutil.rmtree(home, ignore_errors=True)


def end_to_end(
    files: list[Path],
    env: dict[str, str],
    commands: list[list[str]],
    parallel: int,
    *,
    warmup: Path,
    log_dir: Path,
    stall_s: float = 600.0,
) -> tuple[float, float, dict[str, int], Cpu]:
    """(seconds until every job is DONE or QUARANTINED, seconds until storescu got every
    answer, jobs by status, CPU ms per instance by process role). One warm-up instance goes
    through first, off the clock, so that the clock and the CPU reading start with the
    receiver, the queue and the workers ready."""
    from amana.keys import ensure_key

    ensure_key(Path(env["AMANA_KEY_FILE"]))
    cli(env, "db", "upgrade")
    port = int(env["AMANA_DICOM_PORT"])
    started = [
        amana(env, log_dir / f"{'-'.join(c[:1])}-{i}.log", *c) for i, c in enumerate(commands)
    ]
    counter = JobCounter(database_url(env))

    try:
        with services(*started):
            wait_listening(port, 120, *started, sockets=receiver_sockets(env))
            send(port, [warmup])
            wait_finished(counter, 1, started, max(stall_s, 180.0))  # includes start-up
            before = cpu_by_role(*started)
            t0 = time.monotonic()
            send_seconds = send(port, files, parallel=parallel)
            counts = wait_finished(counter, len(files) + 1, started, stall_s)
            seconds = time.monotonic() - t0
            cpu = cpu_ms_per_instance(before, cpu_by_role(*started), len(files))
    finally:
        counter.close()
    counts = {k: v for k, v in counts.items() if v}
    return seconds, send_seconds, counts, cpu


def backlog_drain(
    files: list[Path],
    env: dict[str, str],
    workers: int,
    parallel: int,
    *,
    log_dir: Path,
    stall_s: float = 600.0,
) -> tuple[float, dict[str, int], Cpu]:
    """A backlog already received (receiver alone, no worker running), then drained by
    `workers` worker processes: seconds for the whole backlog at the rate measured between
    the first and the last finished job, so worker start-up is off the clock. The receiver
    stays up, idle, while the workers drain: its sweeper is what sends the samples of a
    sampled series out once the series stops growing (archive/work/sampling.py); without
    it every slice of a primary CT series stays HELD. Only the workers' CPU is counted."""
    from amana.keys import ensure_key

    ensure_key(Path(env["AMANA_KEY_FILE"]))
    cli(env, "db", "upgrade")
    port = int(env["AMANA_DICOM_PORT"])
    receiver = amana(env, log_dir / "receive.log", "receive")
    counter = JobCounter(database_url(env))
    try:
        with services(receiver):
            wait_listening(port, 120, receiver, sockets=receiver_sockets(env))
            send(port, files, parallel=parallel)
            worker = amana(env, log_dir / "worker.log", "worker", "--concurrency", str(workers))
            with services(worker):
                first_done = finished_jobs(
                    wait_finished(counter, 1, [worker], max(stall_s, 180.0))  # with start-up
                )
                before = cpu_by_role(worker)
                first = time.monotonic()
                counts = wait_finished(counter, len(files), [worker], stall_s)
                seconds = time.monotonic() - first
                cpu = cpu_ms_per_instance(
                    before, cpu_by_role(worker), max(1, len(files) - first_done)
                )
    finally:
        counter.close()
    return (
        seconds * len(files) / max(1, len(files) - first_done),
        {k: v for k, v in counts.items() if v},
        cpu,
    )


# --- parts, as `python -m benchmarks` calls them ---------------------------------------


def run_baseline(corpus: Corpus, work: Path, parallel: int) -> list[Result]:
    """storescp and the bare pynetdicom SCP, each with 1 and `parallel` associations."""
    results = []
    runs: list[tuple[str, Callable[[list[Path], Path, int], tuple[float, Cpu]]]] = [
        ("dcmtk storescu -> storescp", baseline),
        ("storescu -> bare pynetdicom SCP", bare_pynetdicom),
    ]
    for label, run in runs:
        for n in associations(parallel):
            seconds, cpu = run(corpus.files, work, n)
            results.append(
                Result(
                    "baseline",
                    f"{label}, {plural(n, 'association')}",
                    len(corpus.files),
                    seconds,
                    corpus.megabytes,
                    notes={"associations": n, "cpu_ms": cpu},
                )
            )
            print(results[-1].line(), flush=True)
    return results


def _receiver_label(receiver_processes: int | None) -> str:
    if receiver_processes is None:
        return ""
    return f", {plural(receiver_processes, 'receiver process')}"


def run_receiver(
    corpus: Corpus, work: Path, parallel: int, receiver_processes: int | None = None
) -> list[Result]:
    results = []
    for n in associations(parallel):
        seconds, cpu = receiver_only(corpus.files, work, n, receiver_processes)
        results.append(
            Result(
                "receiver",
                f"amana receive{_receiver_label(receiver_processes)}, {plural(n, 'association')}",
                len(corpus.files),
                seconds,
                corpus.megabytes,
                notes={"associations": n, "cpu_ms": cpu},
            )
        )
        print(results[-1].line(), flush=True)
    return results


def _embedded_workers() -> int:
    from amana.settings import Settings

    return Settings().worker_concurrency


def run_e2e(
    corpus: Corpus,
    work: Path,
    parallel: int,
    receiver_processes: int | None = None,
    *,
    stall_s: float = 600.0,
    on_error: Callable[[str, BaseException], None] | None = None,
    parts: frozenset[str] = frozenset(("e2e", "pg", "backlog")),
) -> list[Result]:
    """`amana run` (part "e2e"), then PostgreSQL + Redis with 1 and 2 worker processes
    ("pg"), each with 1 and `parallel` associations, then a backlog drained ("backlog").
    A failed configuration is reported through `on_error` (raised when None) and the
    others still run."""
    import redis as redis_lib

    from tests.support.services import ThrowawayRedis, fresh_database, postgres_server

    warmup = work / "warmup.dcm"
    make_ct(warmup, 9999, 0, ("2.25.1", "2.25.2", "2.25.3"), bytes(512 * 512 * 2))
    results: list[Result] = []
    label_rp = _receiver_label(receiver_processes)

    def attempt(
        label: str, run: Callable[[], tuple[float, dict[str, int], dict[str, object]]]
    ) -> None:
        """One row: (seconds, jobs by status, notes) from `run`, or its failure reported."""
        try:
            seconds, counts, notes = run()
        except Exception as exc:  # noqa: BLE001 - reported, the other configurations run
            if on_error is None:
                raise
            on_error(label, exc)
            return
        notes = {"quarantined": counts.get("QUARANTINED", 0), **notes}
        results.append(
            Result("e2e", label, len(corpus.files), seconds, corpus.megabytes, notes=notes)
        )
        print(results[-1].line(), flush=True)

    def measure(label: str, env: dict[str, str], commands: list[list[str]], n: int) -> None:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{label} {n}").strip("-").lower()
        logs = work / "logs" / slug
        logs.mkdir(parents=True, exist_ok=True)

        def run() -> tuple[float, dict[str, int], dict[str, object]]:
            seconds, send_seconds, counts, cpu = end_to_end(
                corpus.files, env, commands, n, warmup=warmup, log_dir=logs, stall_s=stall_s
            )
            return (
                seconds,
                counts,
                {"send_s": round(send_seconds, 2), "associations": n, "cpu_ms": cpu},
            )

        attempt(f"{label}, {plural(n, 'association')}", run)

    workers = _embedded_workers()
    for n in associations(parallel) if "e2e" in parts else []:
        env = amana_env(work / f"embedded-{n}", receiver_processes)
        measure(
            f"amana run (SQLite + SQLite queue{label_rp}, {workers} workers)", env, [["run"]], n
        )
        shutil.rmtree(work / f"embedded-{n}", ignore_errors=True)

    if not parts & {"pg", "backlog"}:
        return results
    redis = ThrowawayRedis()  # private: never flush a Redis other people's tests use
    redis.start()
    try:
        with postgres_server() as pg:
            for workers in (1, 2) if "pg" in parts else ():
                for n in associations(parallel):
                    with fresh_database(pg) as db:
                        redis_lib.Redis.from_url(redis.url).flushall()
                        home = work / f"pg-{workers}-{n}"
                        env = amana_env(
                            home,
                            receiver_processes,
                            AMANA_DATABASE_URL=db,
                            AMANA_BROKER_URL=redis.url,
                        )
                        measure(
                            f"PostgreSQL + Redis{label_rp}, {plural(workers, 'worker')}",
                            env,
                            [["receive"], ["worker", "--concurrency", str(workers)]],
                            n,
                        )
                        shutil.rmtree(home, ignore_errors=True)
            # Worker scaling on its own: the cores are not shared with receivers here.
            for workers in (1, 2) if "backlog" in parts else ():
                with fresh_database(pg) as db:
                    redis_lib.Redis.from_url(redis.url).flushall()
                    home = work / f"backlog-{workers}"
                    env = amana_env(
                        home, receiver_processes, AMANA_DATABASE_URL=db, AMANA_BROKER_URL=redis.url
                    )
                    logs = work / "logs" / f"backlog-{workers}"
                    logs.mkdir(parents=True, exist_ok=True)

                    def drain(
                        env: dict[str, str] = env, workers: int = workers, logs: Path = logs
                    ) -> tuple[float, dict[str, int], dict[str, object]]:
                        seconds, counts, cpu = backlog_drain(
                            corpus.files, env, workers, parallel, log_dir=logs, stall_s=stall_s
                        )
                        return seconds, counts, {"cpu_ms": cpu}

                    try:
                        attempt(
                            "PostgreSQL + Redis, backlog drained by " + plural(workers, "worker"),
                            drain,
                        )
                    finally:
                        shutil.rmtree(home, ignore_errors=True)
    finally:
        redis.stop()
    return results


def apply_baseline_ratio(results: list[Result]) -> None:
    """Every ingest run's instances/s as a fraction of each baseline's with as many
    associations (storescp, bare pynetdicom); runs without associations (a backlog drained)
    against the baselines with 1."""
    bases: dict[tuple[str, int], Result] = {}
    for r in results:
        if r.part == "baseline":
            kind = PYNETDICOM if "pynetdicom" in r.run else STORESCP
            bases.setdefault((kind, int(r.notes.get("associations", 1))), r)
    one = bases.get((STORESCP, 1))
    for r in results:
        if r.part not in ("baseline", "receiver", "e2e"):
            continue
        n = int(r.notes.get("associations", 1))
        if one is not None:  # the figure earlier reports gave
            r.ratio, r.ratio_to = r.rate / one.rate, BASELINE
        if r.part == "baseline":
            continue
        for kind in (PYNETDICOM, STORESCP):
            base = bases.get((kind, n))
            if base is not None:
                r.ratios[f"{kind}/{n}"] = r.rate / base.rate


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--us-share", type=float, default=0.0)
    parser.add_argument("--parallel", type=int, default=4, help="associations (besides 1)")
    parser.add_argument("--receiver-processes", type=int, default=None)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument(
        "--only",
        default=",".join(PARTS),
        help=f"comma-separated parts to run, of {','.join(PARTS)} "
        "(e2e: `amana run`; pg: PostgreSQL + Redis live; backlog: a backlog drained)",
    )
    args = parser.parse_args()
    parts = frozenset(args.only.split(","))
    if unknown := parts - set(PARTS):
        parser.error(f"unknown parts: {','.join(sorted(unknown))}")
    if args.skip_e2e:
        parts -= {"e2e", "pg", "backlog"}
    work = Path(tempfile.mkdtemp(prefix="amana-bench-"))
    try:
        corpus = build_corpus(
            work / "corpus", instances=args.instances, studies=args.studies, us_share=args.us_share
        )
        print(f"corpus: {corpus.describe()}, {os.cpu_count()} cores", flush=True)
        results = run_baseline(corpus, work, args.parallel) if "baseline" in parts else []
        if "receiver" in parts:
            results += run_receiver(corpus, work, args.parallel, args.receiver_processes)
        if parts & {"e2e", "pg", "backlog"}:
            results += run_e2e(corpus, work, args.parallel, args.receiver_processes, parts=parts)
        apply_baseline_ratio(results)
        print_table(results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
