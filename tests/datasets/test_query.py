"""Cohort queries select exactly the instances their filters describe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from archive.catalog.models import Instance, Patient, Series, Study
from archive.datasets.query import parse_where, select_rows
from tests.support.cohort import build_archive

CASES = [
    ["modality=CT", "sex=F", "age_min=40", "age_max=70"],
    ["region=Oriental", "body_part=CHEST"],
    ["sop_class=1.2.840.10008.5.1.4.1.1.4", "study_date_from=20240301", "study_date_to=20240630"],
    ["profile_version=v1", "age_max=25"],
    ["manufacturer=Nadir Imaging", "sex=M"],
    ["model=NX-1", "modality=CT"],
]


def _facts(session: Session) -> list[dict[str, Any]]:
    stmt = (
        select(Instance, Series, Study, Patient)
        .join(Series, Instance.series_id == Series.id)
        .join(Study, Series.study_id == Study.id)
        .join(Patient, Study.patient_id == Patient.id)
    )
    return [
        {
            "sop_uid": i.sop_uid,
            "modality": se.modality,
            "body_part": se.body_part,
            "manufacturer": se.manufacturer,
            "model": se.model,
            "sop_class": i.sop_class_uid,
            "region": st.region,
            "sex": p.sex,
            "profile_version": i.profile_version,
            "age": int(st.patient_age[:3]),
            "date": st.study_date,
        }
        for i, se, st, p in session.execute(stmt)
    ]


def _meets(fact: dict[str, Any], terms: list[str]) -> bool:
    for term in terms:
        key, _, value = term.partition("=")
        if key == "age_min" and fact["age"] < int(value):
            return False
        if key == "age_max" and fact["age"] > int(value):
            return False
        if key == "study_date_from" and fact["date"] < value:
            return False
        if key == "study_date_to" and fact["date"] > value:
            return False
        if key in fact and fact[key] != value:
            return False
    return True


def test_filters_select_what_they_say(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """Rule: a dataset query selects every instance that meets all its filters and no other
    (checked against the catalog's rows filtered in Python)."""
    build_archive(sessions, tmp_path / "archive", patients=400, seed=3)
    with sessions() as session:
        facts = _facts(session)
        for terms in CASES:
            got = {r["sop_uid"] for r in select_rows(session, parse_where(terms))}
            want = {f["sop_uid"] for f in facts if _meets(f, terms)}
            assert want, terms
            assert got == want, terms
