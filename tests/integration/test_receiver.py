"""The receiver's promise: Success only for bytes durable in the spool, which is the record:
every spooled instance gets exactly one job row, even across crashes and catalog outages."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from archive.catalog.db import make_engine
from archive.catalog.models import Job
from tests.raw_scu import send_dataset_files
from tests.support.harness import Amana, wait_until
from tests.support.services import ThrowawayPostgres
from tests.support.study_factory import make_study


def _spooled(home: Path) -> list[Path]:
    return sorted((home / "spool" / "incoming").glob("*.dcm"))


def _job_names(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(conn.scalars(select(Job.spool_name)))
    finally:
        engine.dispose()


def _rows_match_spool(url: str, home: Path, count: int) -> bool:
    """Exactly one job row per spooled file, and `count` of them."""
    names = _job_names(url)
    return names == sorted(p.name for p in _spooled(home)) and len(names) == count


def test_success_means_spooled_and_recorded(tmp_path: Path) -> None:
    """Rule: Success on C-STORE means the exact bytes are durable in the spool, which is the
    record of the arrival: each spooled file then gets exactly one job row."""
    amana = Amana(tmp_path / "home")
    amana.cli("db", "upgrade")
    amana.start("receive", "--no-sweeper")
    url = f"sqlite:///{amana.home / 'catalog.db'}"
    try:
        study = make_study(
            tmp_path / "pacs", layout=[("CT_small.dcm", "ct"), ("MR_small.dcm", "mr")]
        )
        assert send_dataset_files(amana.dicom_port, study.files) == [0x0000, 0x0000]
        spooled = _spooled(amana.home)
        assert len(spooled) == 2
        # The dataset bytes after the file meta are exactly those sent.
        sent_tails = sorted(f.read_bytes()[-4096:] for f in study.files)
        assert sorted(p.read_bytes()[-4096:] for p in spooled) == sent_tails
        wait_until(lambda: _rows_match_spool(url, amana.home, 2), timeout=60)
    finally:
        amana.stop()
    assert _rows_match_spool(url, amana.home, 2)


@pytest.mark.services
def test_catalog_down_still_receives_and_rows_follow(tmp_path: Path) -> None:
    """Rule: with the catalog down the receiver still answers Success for what it made
    durable in the spool (the spool is the record); the job rows come once the catalog is
    back, one per instance, nothing lost, nothing doubled."""
    pg = ThrowawayPostgres()
    pg.start()
    try:
        url = f"{pg.url}/postgres"
        amana = Amana(tmp_path / "home", AMANA_DATABASE_URL=url)
        amana.cli("db", "upgrade")
        amana.start("receive", "--no-sweeper")
        try:
            study = make_study(
                tmp_path / "pacs", layout=[("CT_small.dcm", "ct"), ("MR_small.dcm", "mr")]
            )
            pg.stop()
            assert send_dataset_files(amana.dicom_port, study.files[:1]) == [0x0000]
            assert len(_spooled(amana.home)) == 1
            pg.start()
            assert send_dataset_files(amana.dicom_port, study.files[1:]) == [0x0000]
            wait_until(lambda: _rows_match_spool(url, amana.home, 2), timeout=120)
        finally:
            amana.stop()
        assert _rows_match_spool(url, amana.home, 2)
    finally:
        pg.destroy()


@pytest.mark.services
def test_killed_before_the_row_the_spool_file_gets_it_at_restart(tmp_path: Path) -> None:
    """Rule: a receiver killed after answering Success but before writing the job row (here
    the catalog was down, so the row waited in memory) loses nothing: the next start makes
    the row from the spool file, exactly once, however often it restarts."""
    pg = ThrowawayPostgres()
    pg.start()
    try:
        url = f"{pg.url}/postgres"
        amana = Amana(tmp_path / "home", AMANA_DATABASE_URL=url)
        amana.cli("db", "upgrade")
        amana.start("receive", "--no-sweeper")
        study = make_study(
            tmp_path / "pacs", layout=[("CT_small.dcm", "ct"), ("MR_small.dcm", "mr")]
        )
        try:
            pg.stop()
            assert send_dataset_files(amana.dicom_port, study.files) == [0x0000, 0x0000]
        finally:
            amana.kill()
        pg.start()
        assert _job_names(url) == []
        for _ in range(2):
            amana.start("receive", "--no-sweeper")
            try:
                wait_until(lambda: _rows_match_spool(url, amana.home, 2), timeout=120)
            finally:
                amana.stop()
        assert _rows_match_spool(url, amana.home, 2)
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
