"""Several receiver processes on one DICOM port, and the batched publisher behind them."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from amana.celery_app import PROCESS_JOBS, make_celery, node_queue
from amana.publisher import BATCH_MAX, Publisher
from amana.settings import Settings
from archive.catalog.db import make_engine
from archive.catalog.models import Job
from tests.support.harness import REPO, Amana, echoscu, storescu, wait_until
from tests.support.study_factory import make_study


def _siblings(parent_pid: int) -> list[int]:
    """Receiver processes started by `parent_pid` to share its port."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        if ppid == parent_pid and b"--sibling" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def _job_spool_names(home: Path) -> list[str]:
    engine = make_engine(f"sqlite:///{home / 'catalog.db'}")
    try:
        with engine.connect() as conn:
            return list(conn.scalars(select(Job.spool_name)))
    finally:
        engine.dispose()


@pytest.fixture()
def three_receivers(tmp_path: Path) -> Amana:
    amana = Amana(tmp_path / "home", AMANA_RECEIVER_PROCESSES="3")
    amana.cli("db", "upgrade")
    amana.start("receive", "--no-sweeper")
    assert amana.proc is not None
    parent = amana.proc.pid
    wait_until(lambda: len(_siblings(parent)) == 2, timeout=60)
    return amana


def test_parallel_associations_over_sibling_processes_lose_nothing(
    three_receivers: Amana, tmp_path: Path
) -> None:
    """Rules: with several receiver processes on one port, every instance sent over parallel
    associations is acknowledged, spooled and then has exactly one job row; a second Amana on
    the same port is refused the port instead of sharing it."""
    amana = three_receivers
    try:
        groups = [
            make_study(
                tmp_path / f"pacs{i}",
                patient_id=f"AMN-PROC-{i:03d}",
                layout=[("CT_small.dcm", "ct")] * 6,
            ).files
            for i in range(6)
        ]
        with ThreadPoolExecutor(len(groups)) as pool:
            results = list(pool.map(lambda files: storescu(amana.dicom_port, files), groups))
        assert all(r.returncode == 0 for r in results), [r.stderr[-300:] for r in results]
        spooled = {p.name for p in (amana.home / "spool" / "incoming").glob("*.dcm")}
        assert len(spooled) == sum(len(g) for g in groups)
        # The rows follow the answers (ingest/job_batcher.py), one per spooled file.
        wait_until(lambda: len(_job_spool_names(amana.home)) >= len(spooled), timeout=60)
        names = _job_spool_names(amana.home)
        assert len(names) == len(set(names)) == len(spooled)
        assert set(names) == spooled

        intruder = subprocess.run(
            [sys.executable, "-m", "amana.cli", "receive", "--no-sweeper"],
            env=dict(amana.env, AMANA_RECEIVER_PROCESSES="1"),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert intruder.returncode != 0
    finally:
        amana.stop()


def test_siblings_are_restarted_and_never_outlive_the_receiver(
    three_receivers: Amana, tmp_path: Path
) -> None:
    """Rules: a receiver process that dies is replaced; when the receiver that owns the port
    is killed outright, its siblings exit too, so a restart gets the port back."""
    amana = three_receivers
    assert amana.proc is not None
    parent = amana.proc.pid
    first = _siblings(parent)
    os.kill(first[0], signal.SIGKILL)
    wait_until(lambda: len(_siblings(parent)) == 2 and first[0] not in _siblings(parent), 60)

    survivors = _siblings(parent)
    amana.proc.send_signal(signal.SIGKILL)
    amana.proc.wait(10)
    amana.proc = None
    wait_until(lambda: not any(_alive(pid) for pid in survivors), timeout=30)

    amana.start("receive", "--no-sweeper")
    try:
        study = make_study(tmp_path / "after", layout=[("CT_small.dcm", "ct")])
        assert storescu(amana.dicom_port, study.files).returncode == 0
    finally:
        amana.stop()


class Traffic:
    """PACS senders: dcmtk storescu runs in a loop on parallel associations until stopped."""

    def __init__(self, port: int, files: list[Path], senders: int) -> None:
        self.port = port
        self.files = files
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True) for _ in range(senders)]

    def _send(self) -> None:
        while not self.stopped.is_set():
            subprocess.run(
                ["storescu", "-aet", "TESTPACS", "-aec", "AMANA", "-to", "10", "-ta", "10"]
                + ["-td", "10", "127.0.0.1", str(self.port), *map(str, self.files)],
                capture_output=True,
                timeout=120,
            )

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join()


def _spooled_count(home: Path) -> int:
    return sum(1 for _ in (home / "spool" / "incoming").iterdir())


def _serving(amana: Amana) -> int:
    """Receiver processes that have logged they serve the port, over the whole test."""
    return amana.log_text().count("receiver listening on")


def _kill_owner_under_traffic(amana: Amana, serving_before: int) -> list[int]:
    """Kill -9 the receiver that owns the port once it and its sibling serve and take new
    instances; return the sibling it leaves behind."""
    assert amana.proc is not None
    parent = amana.proc.pid
    wait_until(lambda: _serving(amana) >= serving_before + 2, timeout=180)
    siblings = _siblings(parent)
    assert len(siblings) == 1
    spooled = _spooled_count(amana.home)
    wait_until(lambda: _spooled_count(amana.home) > spooled + 8, timeout=60)
    amana.proc.send_signal(signal.SIGKILL)
    amana.proc.wait(10)
    amana.proc = None
    return siblings


def _restart_and_echo(amana: Amana) -> None:
    """Start the receiver and wait until it serves (the port is bound before the receiver
    is ready, and start-up takes long on a loaded machine); then it must answer C-ECHO."""
    serving_before = _serving(amana)
    amana.start("receive", "--no-sweeper")
    proc = amana.proc
    assert proc is not None
    wait_until(lambda: _serving(amana) > serving_before or proc.poll() is not None, 180)
    assert proc.poll() is None, "the restarted receiver exited (port still held?)"
    assert echoscu(amana.dicom_port), "the restarted receiver does not answer"


def _all_gone(pids: list[int]) -> bool:
    return not any(_alive(pid) for pid in pids)


# Twenty receiver start-ups: about a minute each on a loaded two-core machine.
@pytest.mark.timeout(3000)
def test_killed_receiver_under_traffic_never_leaves_the_port_held(tmp_path: Path) -> None:
    """Rules: 20 times over, the receiver that owns the port is killed outright (kill -9)
    while PACS send to it and its siblings: a receiver started right away binds the port and
    answers C-ECHO, and none of the dead receiver's siblings survives."""
    amana = Amana(tmp_path / "home", AMANA_RECEIVER_PROCESSES="2")
    amana.cli("db", "upgrade")
    files = make_study(tmp_path / "pacs", layout=[("CT_small.dcm", "ct")] * 8).files
    orphans: list[int] = []
    try:
        with Traffic(amana.dicom_port, files, senders=3):
            for _round in range(20):
                serving_before = _serving(amana)
                # Started at once: the last generation's sibling may still be finishing.
                _restart_and_echo(amana)
                wait_until(lambda orphans=orphans: _all_gone(orphans), timeout=30)
                orphans = _kill_owner_under_traffic(amana, serving_before)
        _restart_and_echo(amana)
        wait_until(lambda: _all_gone(orphans), timeout=30)
    finally:
        amana.stop()


def test_publisher_sends_every_job_once_in_bounded_batches(redis_url: str) -> None:
    """Rule: the publisher gathers job ids into messages of at most BATCH_MAX ids, and every
    submitted id is in exactly one message (task messages carry ids only)."""
    import redis

    settings = Settings(broker_url=redis_url)
    publisher = Publisher(make_celery(settings), queue=node_queue(settings.node), linger_s=0.2)
    submitted = list(range(1, 101))
    for start in range(0, len(submitted), 7):
        publisher.submit(submitted[start : start + 7])
        time.sleep(0.01)
    publisher.close()
    assert publisher.unsent == 0

    raw = redis.Redis.from_url(redis_url).lrange(node_queue(settings.node), 0, -1)
    batches = []
    for item in raw:
        message = json.loads(item)
        assert message["headers"]["task"] == PROCESS_JOBS
        body = message["body"]
        if message["properties"]["body_encoding"] == "base64":
            body = base64.b64decode(body)
        args, _kwargs, _embed = json.loads(body)
        batches.append(args[0])
    assert all(1 <= len(batch) <= BATCH_MAX for batch in batches)
    published = [job_id for batch in batches for job_id in batch]
    assert sorted(published) == submitted
    assert len(batches) < len(submitted)  # batching happened
