"""A backlog drained by the workers of one node against the same backlog split over two
nodes, in the same run, on one PostgreSQL and one Redis.

    .venv/bin/python -m benchmarks.nodes_bench [--instances 120] [--workers 2]

1. one node: every instance received by node n1 (its receiver and sweeper, no worker
   running yet), then drained by one `amana worker --concurrency W`;
2. two nodes: half received by n1, half by n2 (own homes, spools, ports, queues), then
   drained by one `amana worker --concurrency W/2` on each node.
Both have W worker processes in all: the figure is what splitting work by node costs (a
queue per node, claims filtered by node), not what a second machine would add. On one
2-core machine two nodes cannot be faster than one: the ratio shows overhead, not scaling.
Seconds are for the whole backlog at the rate measured between the first and the last
finished job (worker start-up off the clock); CPU ms per instance are of the workers.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.processes import (
    JobCounter,
    amana,
    amana_env,
    cli,
    cpu_by_role,
    cpu_ms_per_instance,
    finished_jobs,
    receiver_sockets,
    send,
    services,
    wait_finished,
    wait_listening,
)
from tests.support.corpus import build_corpus


def drain(
    nodes: list[tuple[dict[str, str], list[Path]]],
    concurrency: int,
    db_url: str,
    logs: Path,
    stall_s: float,
) -> tuple[float, dict[str, float]]:
    """Each node's receiver (with its sweeper, which releases the slices held for series
    sampling) takes its files, then each node's worker starts and drains them; (seconds for
    the whole backlog, worker CPU ms per instance). Receivers are not on the CPU bill."""
    total = sum(len(files) for _, files in nodes)
    receivers = [
        amana(env, logs / f"receive-{n}.log", "receive") for n, (env, _) in enumerate(nodes)
    ]
    counter = JobCounter(db_url)
    try:
        with services(*receivers):
            for receiver, (env, files) in zip(receivers, nodes, strict=True):
                port = int(env["AMANA_DICOM_PORT"])
                wait_listening(port, 120, receiver, sockets=receiver_sockets(env))
                send(port, files)
            workers = [
                amana(env, logs / f"worker-{n}.log", "worker", "--concurrency", str(concurrency))
                for n, (env, _) in enumerate(nodes)
            ]
            with services(*workers):
                # Every node's worker has finished a job: all are up, the clock starts.
                deadline = time.monotonic() + max(stall_s, 180.0)
                while not all(_node_done(counter, env["AMANA_NODE"]) for env, _ in nodes):
                    if time.monotonic() > deadline:
                        raise TimeoutError("a node's worker finished nothing")
                    for service in [*workers, *receivers]:
                        service.check_alive()
                    time.sleep(0.05)
                first_done = finished_jobs(counter.counts())
                before = cpu_by_role(*workers)
                first = time.monotonic()
                counts = wait_finished(counter, total, [*workers, *receivers], stall_s)
                seconds = time.monotonic() - first
                cpu = cpu_ms_per_instance(before, cpu_by_role(*workers), max(1, total - first_done))
    finally:
        counter.close()
    # The corpus's noisy CT pixels send whole series to OCR, which quarantines a few
    # slices: the same work in both runs, reported with the figures.
    cpu["quarantined"] = counts.get("QUARANTINED", 0)
    return seconds * total / max(1, total - first_done), cpu


def _node_done(counter: JobCounter, node: str) -> bool:
    from sqlalchemy import func, select

    from archive.catalog.models import Job, JobStatus

    with counter.engine.connect() as conn:
        done = conn.execute(
            select(func.count())
            .select_from(Job)
            .where(Job.node == node)
            .where(Job.status.in_([JobStatus.DONE, JobStatus.QUARANTINED]))
        ).scalar_one()
    return bool(done)


def main() -> int:
    import redis as redis_lib

    from tests.support.services import ThrowawayRedis, fresh_database, postgres_server

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=120)
    parser.add_argument("--workers", type=int, default=2, help="worker processes in all (even)")
    parser.add_argument("--stall-s", type=float, default=300.0)
    parser.add_argument("--work", type=Path)
    parser.add_argument(
        "--two-first", action="store_true", help="run two nodes first (to see order effects)"
    )
    args = parser.parse_args()
    if args.workers < 2 or args.workers % 2:
        parser.error("--workers must be even, 2 or more")
    work = args.work or Path(tempfile.mkdtemp(prefix="amana-nodes-bench-"))
    corpus = build_corpus(work / "corpus", instances=args.instances, studies=8)
    files = corpus.files
    results: dict[str, tuple[float, dict[str, float]]] = {}
    redis = ThrowawayRedis()  # private: never flush a Redis other people's tests use
    redis.start()
    try:
        with postgres_server() as pg:
            order = [("one node", 1), ("two nodes", 2)]
            for label, split in reversed(order) if args.two_first else order:
                with fresh_database(pg) as db:
                    redis_lib.Redis.from_url(redis.url).flushall()
                    run = work / label.replace(" ", "-")
                    shared = dict(
                        AMANA_DATABASE_URL=db,
                        AMANA_BROKER_URL=redis.url,
                        AMANA_KEY_FILE=str(work / "key"),
                        AMANA_ARCHIVE_DIR=str(run / "archive"),
                        AMANA_RECEIVER_PROCESSES="1",
                    )
                    nodes = [
                        (
                            amana_env(run / f"n{n}", AMANA_NODE=f"n{n}", **shared),
                            files[n - 1 :: split],
                        )
                        for n in range(1, split + 1)
                    ]
                    from amana.keys import ensure_key

                    ensure_key(work / "key")
                    cli(nodes[0][0], "db", "upgrade")
                    logs = run / "logs"
                    logs.mkdir(parents=True, exist_ok=True)
                    results[label] = drain(nodes, args.workers // split, db, logs, args.stall_s)
                    seconds, cpu = results[label]
                    print(
                        f"{label:9}: {len(files) / seconds:6.1f} instances/s "
                        f"({seconds:.1f} s for {len(files)}), worker CPU {cpu.get('total')} "
                        f"ms/instance, {cpu['quarantined']:.0f} quarantined",
                        flush=True,
                    )
    finally:
        redis.stop()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    one, two = results["one node"], results["two nodes"]
    print(
        f"two nodes / one node, {args.workers} worker processes in all: "
        f"rate x{one[0] / two[0]:.2f}, worker CPU per instance "
        f"x{two[1].get('total', 0) / max(one[1].get('total', 0), 1e-9):.2f} "
        "(one machine, 2 cores: this is the overhead of splitting by node, not scaling)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
