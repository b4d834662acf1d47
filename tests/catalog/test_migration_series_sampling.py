"""Migration 0006_series_sampling, both ways, with slices held when it is undone."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import inspect, text

from archive.catalog.db import make_engine
from archive.catalog.migrate import alembic_config, upgrade


def test_downgrade_releases_held_slices_and_upgrade_again_works(db_url: str) -> None:
    """Rules: nothing received is lost: undoing the sampling schema turns HELD jobs back into
    RECEIVED ones (which older code runs), drops its table and columns; upgrading again
    restores them."""
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for job_id, status in ((1, "HELD"), (2, "DONE")):
            conn.execute(
                text(
                    "INSERT INTO jobs (id, spool_name, source_kind, size_bytes, status,"
                    " attempts, received_at, duplicate, series_key, instance_number, pixel_mode)"
                    " VALUES (:id, :name, 't', 1, :status, 0, :now, false, '2.25.1', :id, NULL)"
                ),
                {"id": job_id, "name": f"spool-{job_id}", "status": status, "now": now},
            )
        conn.execute(
            text(
                "INSERT INTO series_sampling (series_key, study_uid, state, last_held_at)"
                " VALUES ('2.25.1', '2.25.2', 'HOLDING', :now)"
            ),
            {"now": now},
        )
    command.downgrade(alembic_config(db_url), "0005_source_tls")
    with engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT id, status FROM jobs")).all())
    assert statuses == {1: "RECEIVED", 2: "DONE"}
    schema = inspect(engine)
    assert "series_sampling" not in schema.get_table_names()
    assert {"series_key", "instance_number", "pixel_mode"}.isdisjoint(
        c["name"] for c in schema.get_columns("jobs")
    )
    engine.dispose()

    upgrade(db_url)
    engine = make_engine(db_url)
    schema = inspect(engine)
    assert "series_sampling" in schema.get_table_names()
    assert {"series_key", "instance_number", "pixel_mode"} <= {
        c["name"] for c in schema.get_columns("jobs")
    }
    engine.dispose()
