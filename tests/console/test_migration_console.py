"""Migration 0007_console: the indexes the reports need, added and removed cleanly."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect

from archive.catalog.migrate import alembic_config, upgrade

ADDED = {"ix_jobs_instance_id", "ix_jobs_source_received"}


def _job_indexes(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {str(i["name"]) for i in inspect(engine).get_indexes("jobs")}
    finally:
        engine.dispose()


def test_console_indexes_up_and_down(db_url: str) -> None:
    """Rule: every schema change has a migration that applies and reverts on SQLite and
    PostgreSQL; the model and the migrated catalog name the same indexes."""
    assert _job_indexes(db_url) >= ADDED  # db_url is migrated to head
    command.downgrade(alembic_config(db_url), "0006_series_sampling")
    assert not ADDED & _job_indexes(db_url)
    upgrade(db_url)
    from archive.catalog.models import Job

    modelled = {str(index.name) for index in Job.__table__.indexes}
    assert modelled <= _job_indexes(db_url)
