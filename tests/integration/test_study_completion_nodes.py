"""Study completion with two ingest nodes, one of them down: the catalog state of a study
sent half through each node (as a PACS behind a load balancer does), the workers run in
this process as each node's workers would (their node's jobs only)."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from archive.catalog.models import Node, Study, StudyStatus
from archive.catalog.models_governance import AuditEvent
from archive.work.jobs import create_job, utcnow
from archive.work.nodes import heartbeat, node_status
from archive.work.pipeline import JobResult, WorkerContext, process_jobs
from ingest.spool import Spool
from ingest.sweeper import sweep_once
from tests.support.pipeline_helpers import worker_context
from tests.support.study_factory import make_study


def _enqueue(ctx: WorkerContext, source: Path) -> int:
    """What `ctx.node`'s receiver does: the file in its spool, a RECEIVED job of its node."""
    name, size = Spool(ctx.spool_dir, 0).copy_in(source)
    with ctx.sessions.begin() as session:
        return create_job(
            session,
            spool_name=name,
            size_bytes=size,
            calling_ae="PACS",
            source_kind="dicom",
            node=ctx.node,
        )


def _sweep(sessions: sessionmaker[Session], node: str) -> None:
    # Stable at once: only what is unfinished may keep a study open.
    sweep_once(
        sessions,
        lambda _ids: None,
        stale_after=timedelta(hours=1),
        study_stable_after=timedelta(0),
        node=node,
    )


def _study_events(sessions: sessionmaker[Session]) -> list[dict[str, object]]:
    with sessions() as session:
        rows = session.scalars(
            select(AuditEvent.detail)
            .where(AuditEvent.object_type == "study", AuditEvent.actor == "sweeper")
            .order_by(AuditEvent.seq)
        ).all()
    return [json.loads(detail) for detail in rows]


def _status(sessions: sessionmaker[Session]) -> StudyStatus:
    with sessions() as session:
        (status,) = session.scalars(select(Study.status)).all()
    return status


def test_a_study_half_held_on_a_down_node_is_completed_once(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rules: a study is complete only when none of its instances is unfinished on any
    node: the half that waits in a down node's spool (jobs RECEIVED, its heartbeat stale)
    keeps it RECEIVING however long the other node's half has been archived; once the node
    is back and its half archived, the study is completed with one event counting every
    instance. An instance archived after completion reopens the study with a
    `study_reopened` event before it is completed again: never two completions in a row."""
    casa = worker_context(sessions, tmp_path)
    casa.node = "casa-1"
    # The same key (pseudonyms must agree on every node), a spool of its own.
    rabat = dataclasses.replace(casa, spool_dir=tmp_path / "rabat-spool", node="rabat-1")
    study = make_study(tmp_path / "study")
    *sent, late = study.files
    casa_jobs, rabat_jobs = [], []
    for index, source in enumerate(sent):  # alternately, starting and ending on casa-1
        if index % 2:
            rabat_jobs.append(_enqueue(rabat, source))
        else:
            casa_jobs.append(_enqueue(casa, source))
    now = utcnow()
    with sessions.begin() as session:
        for name in ("casa-1", "rabat-1"):
            heartbeat(session, name, started_at=now, every_s=30, version="test")
        # rabat-1 went down right after receiving: it stopped reporting an hour ago.
        session.execute(
            update(Node)
            .where(Node.name == "rabat-1")
            .values(last_heartbeat_at=now - timedelta(hours=1))
        )

    assert set(process_jobs(casa, casa_jobs).values()) == {JobResult.ARCHIVED}
    _sweep(sessions, "casa-1")
    with sessions() as session:
        down = {status.name: status for status in node_status(session)}["rabat-1"]
    assert not down.alive and down.received == len(rabat_jobs)
    assert _status(sessions) == StudyStatus.RECEIVING, "completed with half of it unfinished"
    assert _study_events(sessions) == []

    assert set(process_jobs(rabat, rabat_jobs).values()) == {JobResult.ARCHIVED}
    _sweep(sessions, "rabat-1")
    _sweep(sessions, "casa-1")
    assert _status(sessions) == StudyStatus.COMPLETE
    assert _study_events(sessions) == [{"status": "COMPLETE", "instances": len(sent)}]

    late_job = _enqueue(casa, late)
    assert process_jobs(casa, [late_job])[late_job] == JobResult.ARCHIVED
    _sweep(sessions, "casa-1")
    _sweep(sessions, "rabat-1")
    assert _status(sessions) == StudyStatus.COMPLETE
    total = len(study.files)
    assert _study_events(sessions) == [
        {"status": "COMPLETE", "instances": len(sent)},
        {"status": "RECEIVING", "reopened": True, "instances": total},
        {"status": "COMPLETE", "instances": total},
    ]
