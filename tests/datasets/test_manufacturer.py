"""Manufacturer and model in the catalog (migration 0009_manufacturer): written at archive time
from the de-identified dataset, selectable in cohort queries, "unknown" where not recorded."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pydicom
import pytest
from alembic import command
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.engine import Deidentifier, load_profile
from anonymizer.pseudonyms import key_from_bytes
from archive.catalog.db import make_engine
from archive.catalog.migrate import alembic_config, upgrade
from archive.catalog.models import Series
from archive.catalog.write import record_instance
from archive.datasets.query import parse_where, select_rows
from tests.anonymizer.factory import Identity, ct_instance, to_bytes
from tests.catalog.conftest import add_instance
from tests.paths import REPO_ROOT


@pytest.mark.ocr
@pytest.mark.parametrize("profile", ["ma-national", "dicom-basic"])
def test_equipment_is_read_from_the_deidentified_file(
    sessions: sessionmaker[Session], profile: str
) -> None:
    """Rule: the catalog's manufacturer and model are the values the de-identified file
    holds (what the profile left), never the received ones: a manufacturer field carrying
    the patient's name reaches the catalog cleaned, as in the archived file; a cohort query
    on the kept value selects the instance."""
    who = Identity()
    ds = ct_instance(who)
    ds.Manufacturer = f"FICTIVE MEDICAL {who.family}"
    engine = Deidentifier(load_profile(profile, REPO_ROOT / "profiles"), key_from_bytes(b"n" * 32))
    outcome = engine.deidentify(to_bytes(ds))
    archived = pydicom.dcmread(io.BytesIO(outcome.data))
    assert outcome.facts.manufacturer == (archived.get("Manufacturer") or None)
    assert outcome.facts.model == (archived.get("ManufacturerModelName") or None)
    assert who.family not in str(outcome.facts.manufacturer)
    with sessions.begin() as session:
        record_instance(
            session,
            outcome.facts,
            archive_path="x.dcm",
            sha256="0" * 64,
            size_bytes=len(outcome.data),
            now=datetime.now(UTC),
        )
    with sessions() as session:
        series = session.scalars(select(Series)).one()
        assert (series.manufacturer, series.model) == (
            outcome.facts.manufacturer,
            outcome.facts.model,
        )
        if outcome.facts.model:
            rows = select_rows(session, parse_where([f"model={outcome.facts.model}"]))
            assert [r["sop_uid"] for r in rows] == [outcome.facts.sop_instance_uid]
            assert rows[0]["manufacturer"] == (outcome.facts.manufacturer or "unknown")


def test_series_without_equipment_are_unknown(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rule: a series cataloged without manufacturer and model (before migration 0009, no
    backfill) is "unknown" in dataset rows, and `manufacturer=unknown` selects exactly those;
    a named manufacturer never selects them."""
    add_instance(sessions, study="2.25.1", series="2.25.11", sop="2.25.111")
    add_instance(sessions, study="2.25.2", series="2.25.22", sop="2.25.222")
    with sessions.begin() as session:
        session.execute(
            text("UPDATE series SET manufacturer = 'ACME', model = 'S9' WHERE series_uid = :u"),
            {"u": "2.25.22"},
        )
    with sessions() as session:
        unknown = select_rows(session, parse_where(["manufacturer=unknown"]))
        acme = select_rows(session, parse_where(["manufacturer=ACME", "model=S9"]))
        every = {r["sop_uid"]: r for r in select_rows(session, parse_where([]))}
    assert [r["sop_uid"] for r in unknown] == ["2.25.111"]
    assert [r["sop_uid"] for r in acme] == ["2.25.222"]
    assert (every["2.25.111"]["manufacturer"], every["2.25.111"]["model"]) == ("unknown",) * 2
    assert (every["2.25.222"]["manufacturer"], every["2.25.222"]["model"]) == ("ACME", "S9")


def test_migration_0009_both_ways(db_url: str) -> None:
    """Rule: migration 0009 adds nullable manufacturer and model columns to series (older
    rows keep NULL), and undoing it drops them without losing the series."""
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO patients (pseudonym, created_at) VALUES ('p', :now)"),
            {"now": datetime.now(UTC)},
        )
        conn.execute(
            text(
                "INSERT INTO studies (study_uid, patient_id, profile_name, profile_version,"
                " key_id, status, first_instance_at, last_instance_at)"
                " VALUES ('2.25.5', (SELECT id FROM patients), 'p', 'v', 'k', 'RECEIVING',"
                " :now, :now)"
            ),
            {"now": datetime.now(UTC)},
        )
        conn.execute(
            text(
                "INSERT INTO series (series_uid, study_id) VALUES ('2.25.55',"
                " (SELECT id FROM studies))"
            )
        )
    command.downgrade(alembic_config(db_url), "0008_datasets")
    columns = {c["name"] for c in inspect(engine).get_columns("series")}
    assert {"manufacturer", "model"}.isdisjoint(columns)
    engine.dispose()
    upgrade(db_url)
    engine = make_engine(db_url)
    assert {"manufacturer", "model"} <= {c["name"] for c in inspect(engine).get_columns("series")}
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT series_uid, manufacturer, model FROM series")).all()
    assert [tuple(r) for r in rows] == [("2.25.55", None, None)]
    engine.dispose()
