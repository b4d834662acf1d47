"""Two ingest nodes on one machine: separate homes, ports, node names and spools, one
PostgreSQL and one Redis, as a national deployment has one per region."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from archive.catalog.db import make_engine, make_sessionmaker
from archive.catalog.models import Instance, Job, JobStatus, Study
from tests.support.harness import Amana, storescu, wait_until
from tests.support.orthanc import Orthanc
from tests.support.study_factory import FakeStudy, identifying_strings, make_study

pytestmark = pytest.mark.services

UNFINISHED = (JobStatus.RECEIVED, JobStatus.RUNNING, JobStatus.HELD)


def _node(
    home: Path, name: str, shared: Path, pg_url: str, redis_url: str, archive: Orthanc
) -> Amana:
    return Amana(
        home,
        AMANA_NODE=name,
        AMANA_DATABASE_URL=pg_url,
        AMANA_BROKER_URL=redis_url,
        # What the nodes share besides the catalog and the broker: the pseudonymization key
        # (the same patient, study and series must get the same pseudonyms on every node)
        # and the archive: one Orthanc over DICOMweb, as in production.
        AMANA_KEY_FILE=str(shared / "pseudonym.key"),
        **archive.amana_env(),
        AMANA_RECEIVER_PROCESSES="1",
        AMANA_WORKER_CONCURRENCY="1",
        # A killed worker's RUNNING jobs are taken up again after this long.
        AMANA_STALE_AFTER_S="20",
    )


def _studies(root: Path, count: int, tag: str) -> list[FakeStudy]:
    return [
        make_study(root / f"{tag}{n}", patient_name=f"Nodetest^{tag}{n}", patient_id=f"N-{tag}{n}")
        for n in range(count)
    ]


def _send(node: Amana, files: list[Path]) -> None:
    result = storescu(node.dicom_port, files)
    assert result.returncode == 0, result.stderr


def _nodes(node: Amana) -> dict[str, dict[str, Any]]:
    rows = json.loads(node.cli("nodes", "--format", "json").stdout)
    return {row["name"]: row for row in rows}


def test_two_nodes_archive_every_instance_once_and_a_killed_node_resumes(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Rule: each node's jobs are run by its own workers from its own spool; a study sent half
    to each node is one study in the catalog (its series sampled across both nodes); a node
    killed with SIGKILL mid-way keeps its jobs (no other node takes them), shows as down,
    and finishes them once restarted; every instance sent ends in the catalog and the
    archive (a real Orthanc, over DICOMweb) exactly once, nothing quarantined, and no
    identifier of any patient is in what Orthanc holds."""
    shared = tmp_path / "shared"
    shared.mkdir()
    archive = Orthanc(tmp_path / "orthanc").start()
    a = _node(tmp_path / "node-a", "node-a", shared, pg_url, redis_url, archive)
    b = _node(tmp_path / "node-b", "node-b", shared, pg_url, redis_url, archive)
    pacs = tmp_path / "pacs"
    split = make_study(pacs / "split", patient_name="Nodetest^Split", patient_id="N-SPLIT")
    only_a = _studies(pacs, 2, "a")
    only_b = _studies(pacs, 5, "b")
    # Both series of the split study (CT 0-2, MR 3-5) arrive partly through each node.
    split_a = [split.files[i] for i in (0, 1, 3)]
    split_b = [split.files[i] for i in (2, 4, 5)]
    files_b = [f for s in only_b for f in s.files]
    engine = make_engine(pg_url)
    sessions = make_sessionmaker(engine)

    def jobs_of(node: str, *statuses: JobStatus) -> int:
        with sessions() as session:
            query = select(func.count()).select_from(Job).where(Job.node == node)
            if statuses:
                query = query.where(Job.status.in_(statuses))
            return int(session.scalar(query) or 0)

    try:
        a.start("run")  # creates the shared key; brings the catalog to the latest schema
        b.start("run")
        _send(a, split_a + [f for s in only_a for f in s.files])
        _send(b, split_b)

        # Node b is killed while its PACS is still sending and its worker is busy.
        sender = threading.Thread(target=storescu, args=(b.dicom_port, files_b), daemon=True)
        sender.start()
        wait_until(lambda: jobs_of("node-b") >= len(split_b) + 8, timeout=120, interval=0.05)
        b.kill()
        sender.join(timeout=120)
        left = jobs_of("node-b", *UNFINISHED)
        received_by_b = jobs_of("node-b")
        # Instances b made durable but had not yet written a row for (rows follow the
        # answers; the spool is the record): its restart makes their rows from the spool.
        spooled_b = [path.name for path in (b.home / "spool" / "incoming").glob("*.dcm")]
        with sessions() as session:
            with_rows = set(
                session.scalars(select(Job.spool_name).where(Job.spool_name.in_(spooled_b)))
            )
        rowless_b = len(set(spooled_b) - with_rows)

        # While b is down: a reports it down, and no worker of a touches b's jobs (a's own
        # held slices may wait for b: a series sampled across both nodes needs b's samples).
        assert left > 0, "node b had finished before it was killed: nothing was tested"
        wait_until(lambda: not _nodes(a).get("node-b", {}).get("alive", True), timeout=60)
        wait_until(
            lambda: jobs_of("node-a", JobStatus.RECEIVED, JobStatus.RUNNING) == 0, timeout=180
        )
        time.sleep(3)
        assert jobs_of("node-b", *UNFINISHED) == left
        assert jobs_of("node-b") == received_by_b

        # b returns: what it had acknowledged resumes from its spool without any resend.
        b.start("run")
        wait_until(lambda: jobs_of("node-b", *UNFINISHED) == 0, timeout=300)
        assert jobs_of("node-b", JobStatus.DONE) == received_by_b + rowless_b
        # Then its PACS sends the interrupted transfer again, as a PACS does.
        _send(b, files_b)
        wait_until(
            lambda: jobs_of("node-a", *UNFINISHED) + jobs_of("node-b", *UNFINISHED) == 0,
            timeout=300,
        )
        status = _nodes(a)
        assert status["node-a"]["alive"] and status["node-b"]["alive"]
        assert status["node-a"]["backlog"] == status["node-b"]["backlog"] == 0

        sent = [split, *only_a, *only_b]
        with sessions() as session:
            # The split study is one study: a second row for it would make one more.
            assert session.scalar(select(func.count()).select_from(Study)) == len(sent)
            instances = session.scalar(select(func.count()).select_from(Instance))
            assert instances == sum(len(s.files) for s in sent)
            quarantined = session.scalar(
                select(func.count()).select_from(Job).where(Job.status == JobStatus.QUARANTINED)
            )
            assert quarantined == 0
            # Each archived instance has one job that archived it (the rest are duplicates).
            archiving = session.execute(
                select(Job.instance_id, func.count())
                .where(Job.status == JobStatus.DONE)
                .where(Job.duplicate.is_(False))
                .group_by(Job.instance_id)
            ).all()
            assert len(archiving) == instances and {n for _, n in archiving} == {1}
        stored = archive.sop_uids()
        assert len(stored) == len(set(stored)) == instances
        # Parts of two characters ("a0" of "Nodetest^a0") occur in any pixel data by chance;
        # the whole names, ids and UIDs cannot.
        secrets = {v for study in sent for v in identifying_strings(study) if len(v) >= 6}
        for ident in archive.instance_ids():
            data = archive.file(ident)
            assert not [v for v in secrets if v in data], "an identifier reached the archive"
        listed = a.studies()
        assert len(listed) == len(sent)
        assert all(study["instances"] == len(split.files) for study in listed), listed
        # Node a ran exactly what it received (its half of the split study and its own).
        assert jobs_of("node-a", JobStatus.DONE) == jobs_of("node-a") == len(split_a) + 12
        # Every spool file got its job, the killed node's included, and was finished.
        assert not list((a.home / "spool" / "incoming").glob("*"))
        assert not list((b.home / "spool" / "incoming").glob("*"))
    finally:
        a.stop()
        b.stop()
        archive.stop()
        engine.dispose()


def _queued(redis_url: str, queue: str) -> list[int]:
    import base64

    import redis

    ids: list[int] = []
    for raw in redis.Redis.from_url(redis_url).lrange(queue, 0, -1):
        message = json.loads(raw)
        body = message["body"]
        if message["properties"]["body_encoding"] == "base64":
            body = base64.b64decode(body)
        ids += json.loads(body)[0][0]
    return sorted(ids)


def test_ids_of_any_node_reach_that_nodes_queue_only(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Rule: job ids whose node the sender does not know (a sweeper's or a worker's released
    samples) are published to the queue of each job's own node, each id once; a job made
    without a node goes to the sender's own queue. Task messages carry ids only."""
    from amana.celery_app import make_celery, node_queue
    from amana.publisher import Publisher
    from amana.routing import routed_sink
    from amana.settings import Settings
    from archive.catalog.migrate import upgrade
    from archive.work.jobs import create_job

    upgrade(pg_url)
    engine = make_engine(pg_url)
    sessions = make_sessionmaker(engine)
    owners = ["node-a", "node-b", None, "node-b", "node-c", "node-a", "node-b"]
    made: dict[int, str | None] = {}
    with sessions.begin() as session:
        for n, node in enumerate(owners * 3):
            job_id = create_job(
                session,
                spool_name=f"r{n}",
                size_bytes=1,
                calling_ae="PACS",
                source_kind="dicom",
                node=node,
            )
            made[job_id] = node
    settings = Settings(broker_url=redis_url, node="node-a", home=tmp_path)
    publisher = Publisher(make_celery(settings), queue=node_queue("node-a"), linger_s=0.1)
    sink = routed_sink(sessions, "node-a", lambda ids, queue: publisher.submit(ids, queue=queue))
    try:
        ids = list(made)
        sink(ids[:10])
        sink(ids[10:])
    finally:
        publisher.close()
        engine.dispose()
    assert publisher.unsent == 0
    for node in ("node-a", "node-b", "node-c"):
        expected = sorted(j for j, n in made.items() if (n or "node-a") == node)
        assert _queued(redis_url, node_queue(node)) == expected
