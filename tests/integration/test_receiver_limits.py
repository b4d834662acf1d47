"""Limits held while an instance arrives, and the partial instances cleared at start."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pydicom
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]
from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.catalog.db import make_engine
from archive.catalog.models import Job
from archive.catalog.models_governance import AuditEvent
from archive.fsio import free_bytes
from ingest.receive_files import SPACE_CHECK_BYTES, ReceiveFiles
from ingest.spool import Spool
from tests.raw_scu import send_dataset_files
from tests.support.harness import Amana, echoscu, wait_until
from tests.support.study_factory import make_study

MIB = 1024 * 1024


def _big_instance(directory: Path, megabytes: int) -> Path:
    """A CT instance carrying `megabytes` of private bytes (a made-up identity inside)."""
    study = make_study(directory, layout=[("CT_small.dcm", "ct")])
    ds = pydicom.dcmread(study.files[0])
    block = ds.private_block(0x0009, "AMANA TEST", create=True)
    block.add_new(0x10, "OB", bytes(megabytes * MIB))
    path = directory / "big.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _tmp_bytes(tmp: Path) -> int:
    total = 0
    for path in tmp.iterdir():
        try:
            total += path.stat().st_size
        except FileNotFoundError:  # renamed or deleted meanwhile
            continue
    return total


class TmpPeak(threading.Thread):
    """The largest total size spool/tmp reached while it ran."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(daemon=True)
        self.tmp = tmp
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.002):
            self.peak = max(self.peak, _tmp_bytes(self.tmp))

    def stop(self) -> int:
        self.stopped.set()
        self.join()
        return self.peak


def _catalog(home: Path) -> tuple[list[str], list[tuple[str | None, dict[str, object]]]]:
    """Spool names of the job rows, and (object type, detail) of each audit event."""
    engine = make_engine(f"sqlite:///{home / 'catalog.db'}")
    try:
        with Session(engine) as session:
            names = list(session.scalars(select(Job.spool_name)))
            events = [
                (e.object_type, json.loads(e.detail)) for e in session.scalars(select(AuditEvent))
            ]
        return names, events
    finally:
        engine.dispose()


def test_oversized_instance_is_refused_while_it_arrives(tmp_path: Path) -> None:
    """Rules: the size limit holds while an instance arrives: with AMANA_MAX_INSTANCE_MB=1 a
    60 MB instance is answered 0xA700 with never more than the limit in spool/tmp, nothing
    of it stays, and the next instance on the same association is stored."""
    big = _big_instance(tmp_path / "pacs-big", 60)
    small = make_study(tmp_path / "pacs-small", layout=[("CT_small.dcm", "ct")]).files[0]
    amana = Amana(tmp_path / "home", AMANA_MAX_INSTANCE_MB="1", AMANA_RECEIVER_PROCESSES="1")
    amana.cli("db", "upgrade")
    amana.start("receive", "--no-sweeper")
    tmp = amana.home / "spool" / "tmp"
    watcher = TmpPeak(tmp)
    watcher.start()
    try:
        statuses = send_dataset_files(amana.dicom_port, [big, small])
    finally:
        peak = watcher.stop()
        amana.stop()
    assert statuses == [0xA700, 0x0000]
    assert 0 < peak <= 1 * MIB
    assert list(tmp.iterdir()) == []
    names, _events = _catalog(amana.home)
    spooled = [p.name for p in (amana.home / "spool" / "incoming").iterdir()]
    assert len(names) == 1 and spooled == names
    assert (amana.home / "spool" / "incoming" / names[0]).stat().st_size < MIB


def test_spool_running_out_while_receiving_refuses_the_instance(tmp_path: Path) -> None:
    """Rule: free space is checked while writing: once an arriving instance would take the
    spool below its threshold, writing stops, what was written is deleted and the C-STORE
    is refused (spool_full, 0xA700) rather than filling the disk."""
    spool = Spool(tmp_path / "spool", min_free_bytes=0)
    # The threshold sits 24 MiB below what is free now: 64 MiB cannot fit above it.
    spool.min_free_bytes = free_bytes(spool.root) - 24 * MIB
    files = ReceiveFiles(spool)
    received = files.open(delete=False, mode="wb", suffix=".dcm")
    chunk = bytes(MIB)
    for _ in range(64):
        received.write(chunk)
        received.file.flush()
    assert received.refusal is not None and received.refusal.code == "spool_full"
    assert received.written <= 24 * MIB + SPACE_CHECK_BYTES
    assert not Path(received.name).exists()
    received.close()
    assert list(spool.tmp.iterdir()) == []


def test_spool_below_threshold_refuses_the_association_transiently(tmp_path: Path) -> None:
    """Rule: the receiver refuses before the disk is full: below the spool's free-space
    threshold an association is rejected as transient (the PACS keeps the study and tries
    again later) and nothing is spooled."""
    amana = Amana(tmp_path / "home", AMANA_SPOOL_MIN_FREE_MB=str(10**9))
    amana.cli("db", "upgrade")
    amana.start("receive", "--no-sweeper")
    try:
        ae = AE(ae_title="TESTPACS")
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", amana.dicom_port, ae_title="AMANA")
        assert assoc.is_rejected
        assert assoc.acceptor.primitive is not None
        assert assoc.acceptor.primitive.result == 0x02  # rejected-transient
        assert not echoscu(amana.dicom_port)
        assert list((amana.home / "spool" / "incoming").iterdir()) == []
    finally:
        amana.stop()


def test_partial_instances_left_by_a_killed_receiver_are_removed_at_start(
    tmp_path: Path,
) -> None:
    """Rules: partial instances a receiver left in spool/tmp (never answered Success) are
    removed when a receiver starts, counted in the log without any name or path and in one
    audit event; a folder import's copies (*.part) are left alone."""
    home = tmp_path / "home"
    tmp = home / "spool" / "tmp"
    tmp.mkdir(parents=True)
    identity = b"Testpatient^Fatima AMN-TEST-48213"
    planted = [tmp / "recv-k3j2h1.dcm", tmp / "tmpq8w7e6.dcm", tmp / "recv-z9y8x7.dcm"]
    for path in planted:
        path.write_bytes(b"\0" * 128 + b"DICM" + identity)
    importing = tmp / "0f3c2a.part"
    importing.write_bytes(identity)
    amana = Amana(home)
    amana.cli("db", "upgrade")
    amana.start("receive", "--no-sweeper")
    try:
        assert echoscu(amana.dicom_port)
    finally:
        amana.stop()
    assert sorted(tmp.iterdir()) == [importing]
    log = amana.log_text()
    assert "removed 3 unacknowledged partial instances" in log
    assert not any(path.name in log for path in planted)
    _names, events = _catalog(home)
    purges = [detail for object_type, detail in events if object_type == "spool"]
    assert purges == [{"removed": 3, "reason": "unacknowledged"}]


def test_partial_instance_of_a_lost_connection_is_removed(tmp_path: Path) -> None:
    """Rule: when a PACS's connection ends in the middle of an instance (storescu killed),
    the receiver deletes the partial data set at once: no original stays outside a job."""
    big = _big_instance(tmp_path / "pacs", 60)
    amana = Amana(tmp_path / "home", AMANA_RECEIVER_PROCESSES="1")
    amana.cli("db", "upgrade")
    amana.start("receive", "--no-sweeper")
    tmp = amana.home / "spool" / "tmp"
    command = ["storescu", "--max-send-pdu", "16384", "-aet", "TESTPACS", "-aec", "AMANA"]
    sender = subprocess.Popen(
        [*command, "127.0.0.1", str(amana.dicom_port), str(big)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # A fast receiver takes the 60 MB in about half a second: look often, and kill the
        # sender as soon as the first MiB is there, long before the instance is complete.
        wait_until(lambda: _tmp_bytes(tmp) > MIB, timeout=60, interval=0.002)
        sender.kill()
        sender.wait()
        wait_until(lambda: list(tmp.iterdir()) == [], timeout=30)
        assert echoscu(amana.dicom_port)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
        amana.stop()
    assert list((amana.home / "spool" / "incoming").iterdir()) == []
