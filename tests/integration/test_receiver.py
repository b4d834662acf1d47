"""The receiver's promise: Success only for bytes on disk and a committed job row."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from archive.catalog.db import make_engine
from archive.catalog.models import Job
from tests.raw_scu import send_dataset_files
from tests.support.harness import Amana
from tests.support.services import ThrowawayPostgres
from tests.support.study_factory import make_study


def _spooled(home: Path) -> list[Path]:
    return sorted((home / "spool" / "incoming").glob("*.dcm"))


def test_success_means_spooled_and_committed(tmp_path: Path) -> None:
    """Rule: Success on C-STORE means the exact bytes are in the spool and a job row exists."""
    amana = Amana(tmp_path / "home")
    amana.cli("db", "upgrade")
    amana.start("receive", "--no-sweeper")
    try:
        study = make_study(
            tmp_path / "pacs", layout=[("CT_small.dcm", "ct"), ("MR_small.dcm", "mr")]
        )
        assert send_dataset_files(amana.dicom_port, study.files) == [0x0000, 0x0000]
        spooled = _spooled(amana.home)
        engine = make_engine(f"sqlite:///{amana.home / 'catalog.db'}")
        with engine.connect() as conn:
            names = set(conn.scalars(select(Job.spool_name)))
        assert {p.name for p in spooled} == names and len(names) == 2
        # The dataset bytes after the file meta are exactly those sent.
        sent_tails = sorted(f.read_bytes()[-4096:] for f in study.files)
        assert sorted(p.read_bytes()[-4096:] for p in spooled) == sent_tails
    finally:
        amana.stop()


@pytest.mark.services
def test_database_down_answers_out_of_resources_and_keeps_nothing(tmp_path: Path) -> None:
    """Rule: when the job cannot be committed the answer is 0xA700 (the PACS keeps the
    study and retries), and no orphan file stays in the spool."""
    pg = ThrowawayPostgres()
    pg.start()
    try:
        url = f"{pg.url}/postgres"
        amana = Amana(tmp_path / "home", AMANA_DATABASE_URL=url)
        amana.cli("db", "upgrade")
        amana.start("receive", "--no-sweeper")
        try:
            study = make_study(tmp_path / "pacs", layout=[("CT_small.dcm", "ct")])
            pg.stop()
            assert send_dataset_files(amana.dicom_port, study.files) == [0xA700]
            assert _spooled(amana.home) == []
            pg.start()
            assert send_dataset_files(amana.dicom_port, study.files) == [0x0000]
            engine = make_engine(url)
            with engine.connect() as conn:
                assert conn.scalar(select(func.count()).select_from(Job)) == 1
            engine.dispose()
        finally:
            amana.stop()
    finally:
        pg.destroy()


def test_only_registered_senders_may_associate(tmp_path: Path) -> None:
    """Rule: a calling AE title that is not registered (with its address) is refused at
    association; once registered with `amana sources add`, the same PACS may send."""
    from tests.support.harness import echoscu

    amana = Amana(tmp_path / "home", AMANA_ACCEPT_LOOPBACK="false")
    amana.cli("db", "upgrade")
    amana.start("receive", "--no-sweeper")
    try:
        assert not echoscu(amana.dicom_port)
        amana.cli("sources", "add", "TESTPACS", "127.0.0.1", "--site", "CHU test")
        assert echoscu(amana.dicom_port)
        amana.cli("sources", "add", "OTHERPACS", "10.9.9.9")
        assert not echoscu(amana.dicom_port, calling_ae="OTHERPACS")
    finally:
        amana.stop()
