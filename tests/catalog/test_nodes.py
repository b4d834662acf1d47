"""Ingest nodes in the catalog: whose jobs a worker may claim, which jobs a sweeper re-sends,
what `amana nodes` and GET /nodes report (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from amana.cli_nodes import node_rows
from archive.api import create_app
from archive.catalog.db import make_engine, make_sessionmaker
from archive.catalog.migrate import upgrade
from archive.catalog.models import Job, JobStatus
from archive.work.jobs import claim_many, create_job
from archive.work.nodes import heartbeat, node_status
from ingest.sweeper import sweep_once
from tests.catalog.conftest import mint
from tests.paths import REPO_ROOT

NODES = ("rabat-1", "casa-1", "fes-1")


def _jobs(sessions: sessionmaker[Session], nodes: list[str]) -> dict[int, str]:
    """One RECEIVED job per entry of `nodes`; returns job id -> node."""
    made = {}
    with sessions.begin() as session:
        for n, node in enumerate(nodes):
            job_id = create_job(
                session,
                spool_name=f"{node}-{n}-{random.getrandbits(32):08x}",
                size_bytes=1,
                calling_ae="PACS",
                source_kind="dicom",
                node=node,
            )
            made[job_id] = node
    return made


def _age(sessions: sessionmaker[Session], job_ids: list[int], **columns: object) -> None:
    with sessions.begin() as session:
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(**columns))


def test_a_worker_claims_only_its_own_nodes_jobs(sessions: sessionmaker[Session]) -> None:
    """Rule: a job id reaching any node's worker is claimed only by a worker of the job's own
    node (only it can read the original), fresh RECEIVED or stale RUNNING alike; the others
    stay untouched for their node."""
    rng = random.Random(15)
    for _round in range(3):
        made = _jobs(sessions, [rng.choice(NODES) for _ in range(24)])
        ids = list(made)
        stale = rng.sample(ids, 8)
        long_ago = datetime.now(UTC) - timedelta(hours=2)
        _age(sessions, stale, status=JobStatus.RUNNING, claimed_at=long_ago)
        for node in NODES:
            with sessions.begin() as session:
                claims = claim_many(session, ids, stale_after=timedelta(minutes=5), node=node)
            assert {c.job_id for c in claims} == {j for j, n in made.items() if n == node}
        with sessions() as session:
            statuses = set(session.scalars(select(Job.status).where(Job.id.in_(ids))))
        assert statuses == {JobStatus.RUNNING}


def test_a_sweeper_resends_only_its_own_nodes_jobs(sessions: sessionmaker[Session]) -> None:
    """Rule: a node's sweeper re-sends its own stale RECEIVED and RUNNING jobs (and, after an
    outage or at its start, every RECEIVED one of its own) and never another node's: those
    wait for their node, whose spool holds them."""
    made = _jobs(sessions, [NODES[i % 3] for i in range(30)])
    ids = list(made)
    old = datetime.now(UTC) - timedelta(hours=1)
    _age(sessions, ids, enqueued_at=old)
    _age(sessions, ids[::4], status=JobStatus.RUNNING, claimed_at=old)
    for after_outage in (False, True):
        for node in NODES:
            sent: list[int] = []
            sweep_once(
                sessions,
                sent.extend,
                stale_after=timedelta(minutes=5),
                study_stable_after=timedelta(minutes=5),
                after_outage=after_outage,
                node=node,
            )
            assert set(sent) == {j for j, n in made.items() if n == node}, (node, after_outage)
        _age(sessions, ids, enqueued_at=old, claimed_at=old)


def test_node_status_counts_each_nodes_backlog_rates_and_errors(
    sessions: sessionmaker[Session],
) -> None:
    """Rule: each node's backlog (RECEIVED, RUNNING, HELD), archived instances in the last
    5 minutes and hour, quarantines in the last hour are counted from its own jobs only; a
    node is up while it reports, down after three missed heartbeats, and listed even if it
    never reported but holds jobs."""
    now = datetime.now(UTC)
    plan = {
        "rabat-1": {"RECEIVED": 3, "RUNNING": 1, "HELD": 2, "DONE_2m": 4, "DONE_30m": 5, "Q": 1},
        "casa-1": {"RECEIVED": 1, "DONE_2m": 1, "DONE_3h": 7, "Q_3h": 2},
        "fes-1": {"RUNNING": 2},
    }
    for node, kinds in plan.items():
        for kind, count in kinds.items():
            ids = list(_jobs(sessions, [node] * count))
            values: dict[str, object] = {}
            if kind in ("RUNNING", "HELD"):
                values = {"status": JobStatus(kind), "claimed_at": now}
            elif kind.startswith("DONE"):
                ago = {"DONE_2m": 2, "DONE_30m": 30, "DONE_3h": 180}[kind]
                values = {"status": JobStatus.DONE, "finished_at": now - timedelta(minutes=ago)}
            elif kind.startswith("Q"):
                ago = 180 if kind == "Q_3h" else 10
                values = {
                    "status": JobStatus.QUARANTINED,
                    "finished_at": now - timedelta(minutes=ago),
                }
            if values:
                _age(sessions, ids, **values)
    with sessions.begin() as session:
        heartbeat(session, "rabat-1", started_at=now, every_s=30, version="0.1.0")
        heartbeat(session, "casa-1", started_at=now, every_s=30, version="0.1.0")
        # Reported, but long ago: down.
        heartbeat(session, "old-1", started_at=now, every_s=30, version="0.0.9")
        heartbeat(session, "casa-1", started_at=now, every_s=30, version="0.1.1")
    _age_node(sessions, "old-1", now - timedelta(minutes=5))
    with sessions() as session:
        found = {s.name: s for s in node_status(session, now=now + timedelta(seconds=1))}
    assert set(found) == {"rabat-1", "casa-1", "fes-1", "old-1"}
    rabat, casa, fes, old = (found[n] for n in ("rabat-1", "casa-1", "fes-1", "old-1"))
    assert (rabat.received, rabat.running, rabat.held, rabat.backlog) == (3, 1, 2, 6)
    assert (rabat.done_last_5_min, rabat.done_last_hour, rabat.quarantined_last_hour) == (4, 9, 1)
    assert (casa.backlog, casa.done_last_5_min, casa.done_last_hour) == (1, 1, 1)
    assert casa.quarantined_last_hour == 0 and casa.version == "0.1.1"
    assert rabat.alive and casa.alive and not old.alive
    assert fes.last_heartbeat_at is None and not fes.alive and fes.backlog == 2


def _age_node(sessions: sessionmaker[Session], name: str, when: datetime) -> None:
    from archive.catalog.models import Node

    with sessions.begin() as session:
        session.execute(update(Node).where(Node.name == name).values(last_heartbeat_at=when))


@pytest.fixture()
def client(sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(create_app(sessions, profiles_dir=REPO_ROOT / "profiles")) as c:
        yield c


def test_get_nodes_serves_what_amana_nodes_prints(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    """Rule: GET /nodes is read by auditors and admins (no one else) and gives the same
    figures as `amana nodes`, both from archive.work.nodes.node_status."""
    _jobs(sessions, ["rabat-1", "rabat-1", "casa-1"])
    with sessions.begin() as session:
        heartbeat(session, "rabat-1", started_at=datetime.now(UTC), every_s=30, version="0.1.0")
    steward = mint(sessions, "steward")
    assert client.get("/nodes").status_code == 401
    assert client.get("/nodes", headers={"Authorization": f"Bearer {steward}"}).status_code == 403
    for role in ("auditor", "admin"):
        token = mint(sessions, role)
        response = client.get("/nodes", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        body = {row["name"]: row for row in response.json()}
        with sessions() as session:
            cli = {row["name"]: row for row in node_rows(session)}
        assert set(body) == set(cli) == {"rabat-1", "casa-1"}
        for name, row in body.items():
            for key in ("received", "backlog", "done_last_hour", "quarantined_last_hour"):
                assert row[key] == cli[name][key]
        assert body["rabat-1"]["alive"] and not body["casa-1"]["alive"]
        assert body["rabat-1"]["backlog"] == 2
    assert "/nodes" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("node", ["old-box", None])
def test_jobs_from_before_nodes_belong_to_the_node_that_upgrades(
    tmp_path: Path, node: str | None
) -> None:
    """Rule: 0012_nodes gives every job made before nodes existed to the node running the
    upgrade (AMANA_NODE of `amana db upgrade`, the host name by default): that machine's
    spool holds them, and its workers go on with them."""
    import socket

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    upgrade(url, "0011_job_resends")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO jobs (spool_name, source_kind, size_bytes, status, attempts, duplicate)"
            " VALUES ('a1', 'dicom', 1, 'RECEIVED', 0, 0), ('a2', 'dicom', 1, 'DONE', 1, 0)"
        )
    upgrade(url, node=node)
    with make_sessionmaker(engine)() as session:
        owners = set(session.scalars(select(Job.node)))
    engine.dispose()
    assert owners == {node or socket.gethostname()}
