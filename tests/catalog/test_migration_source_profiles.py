"""Migration 0004_source_profiles on a catalog that already has the bug's traces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import text

from archive.catalog.db import make_engine
from archive.catalog.migrate import alembic_config, upgrade


def test_upgrade_leaves_one_active_version_per_name_and_marks_approved(db_url: str) -> None:
    """Rules: a catalog with two ACTIVE versions of one name keeps only the most recently
    activated one ACTIVE (the other RETIRED); a PROPOSED version a second steward approved
    becomes APPROVED; jobs gain their source column; downgrading and upgrading again work."""
    command.downgrade(alembic_config(db_url), "0002")
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    rows = [
        (1, "ma-national", "aaaa", "ACTIVE", "tok_a", now - timedelta(days=1)),
        (2, "ma-national", "bbbb", "ACTIVE", "tok_a", now),
        (3, "ma-national", "cccc", "PROPOSED", "tok_a", None),
        (4, "dicom-basic", "dddd", "PROPOSED", "tok_a", None),
    ]
    with engine.begin() as conn:
        for row_id, name, version, status, by, activated in rows:
            conn.execute(
                text(
                    "INSERT INTO profile_versions (id, name, version, yaml_text, status,"
                    " proposed_by, proposed_at, activated_at)"
                    " VALUES (:id, :name, :version, 'x', :status, :by, :at, :activated)"
                ),
                {
                    "id": row_id,
                    "name": name,
                    "version": version,
                    "status": status,
                    "by": by,
                    "at": now,
                    "activated": activated,
                },
            )
        approvals = [(3, "tok_b"), (4, "tok_a")]  # a second steward; the proposer alone
        for index, (version_id, by) in enumerate(approvals, start=1):
            conn.execute(
                text(
                    "INSERT INTO profile_approvals (id, profile_version_id, approved_by,"
                    " approved_at) VALUES (:id, :pv, :by, :at)"
                ),
                {"id": index, "pv": version_id, "by": by, "at": now},
            )
    upgrade(db_url)
    with engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT version, status FROM profile_versions")).all())
        assert conn.execute(text("SELECT count(source_id) FROM jobs")).scalar_one() == 0
    assert statuses == {"aaaa": "RETIRED", "bbbb": "ACTIVE", "cccc": "APPROVED", "dddd": "PROPOSED"}
    command.downgrade(alembic_config(db_url), "0002")
    upgrade(db_url)
    engine.dispose()
