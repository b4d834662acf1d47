"""A cohort query over the catalog, and the rows it selects (one per archived instance).

Manufacturer and model come from the series (migration 0009): series cataloged before it
have none and say "unknown", which a filter on `manufacturer=unknown` selects.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, select
from sqlalchemy.orm import Session

from anonymizer.dates import age_years_from_as
from archive.catalog.models import Instance, Job, Patient, Series, Study
from archive.catalog.models_governance import Source
from archive.datasets.privacy import age_band

UNKNOWN = "unknown"


@dataclass(frozen=True)
class Where:
    modality: str | None = None
    body_part: str | None = None
    sop_class: str | None = None
    region: str | None = None
    source: str | None = None  # the sending AE title, through the instance's job
    sex: str | None = None
    age_min: int | None = None
    age_max: int | None = None
    study_date_from: str | None = None  # YYYYMMDD, shifted dates as the catalog holds them
    study_date_to: str | None = None
    received_from: datetime | None = None  # when the job that brought the instance arrived
    received_to: datetime | None = None
    profile_version: str | None = None
    manufacturer: str | None = None  # as the de-identified file says; "unknown": not recorded
    model: str | None = None

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in out.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Where:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown filter(s): {', '.join(sorted(unknown))}")
        parsed = dict(data)
        for key in ("received_from", "received_to"):
            if isinstance(parsed.get(key), str):
                parsed[key] = datetime.fromisoformat(parsed[key])
        return cls(**parsed)


def parse_where(terms: list[str]) -> Where:
    """`--where modality=CT --where age_min=40 ...` into a Where."""
    data: dict[str, Any] = {}
    for term in terms:
        key, sep, value = term.partition("=")
        if not sep:
            raise ValueError(f"--where takes KEY=VALUE, not {term!r}")
        key = key.strip().replace("-", "_")
        data[key] = int(value) if key in ("age_min", "age_max") else value.strip()
    return Where.from_json(data)


def _statement(where: Where) -> Select[Instance, Series, Study, Patient]:
    stmt = (
        select(Instance, Series, Study, Patient)
        .join(Series, Instance.series_id == Series.id)
        .join(Study, Series.study_id == Study.id)
        .join(Patient, Study.patient_id == Patient.id)
    )
    equal = [
        (Series.modality, where.modality),
        (Series.body_part, where.body_part),
        (Instance.sop_class_uid, where.sop_class),
        (Study.region, where.region),
        (Patient.sex, where.sex),
        (Instance.profile_version, where.profile_version),
    ]
    for column, value in equal:
        if value is not None:
            stmt = stmt.where(column == value)
    for column, value in ((Series.manufacturer, where.manufacturer), (Series.model, where.model)):
        if value == UNKNOWN:
            stmt = stmt.where(column.is_(None))
        elif value is not None:
            stmt = stmt.where(column == value)
    if where.study_date_from:
        stmt = stmt.where(Study.study_date >= where.study_date_from)
    if where.study_date_to:
        stmt = stmt.where(Study.study_date <= where.study_date_to)
    job_terms = []
    if where.received_from:
        job_terms.append(Job.received_at >= where.received_from)
    if where.received_to:
        job_terms.append(Job.received_at <= where.received_to)
    if where.source:
        job_terms.append(
            Job.source_id.in_(select(Source.id).where(Source.ae_title == where.source))
        )
    if job_terms:
        stmt = stmt.where(exists().where(and_(Job.instance_id == Instance.id, *job_terms)))
    return stmt.order_by(Instance.id)


def age_years(study: Study) -> int | None:
    return age_years_from_as(study.patient_age) if study.patient_age else None


def select_rows(session: Session, where: Where) -> list[dict[str, Any]]:
    """One row per instance the query selects (age bounds applied on the study's age)."""
    rows: list[dict[str, Any]] = []
    for instance, series, study, patient in session.execute(_statement(where)):
        years = age_years(study)
        if where.age_min is not None and (years is None or years < where.age_min):
            continue
        if where.age_max is not None and (years is None or years > where.age_max):
            continue
        rows.append(describe(instance, series, study, patient, years))
    return rows


def describe(
    instance: Instance, series: Series, study: Study, patient: Patient, years: int | None
) -> dict[str, Any]:
    return {
        "instance_id": instance.id,
        "patient_id": patient.id,
        "patient": patient.pseudonym,
        "study_uid": study.study_uid,
        "series_uid": series.series_uid,
        "sop_uid": instance.sop_uid,
        "sop_class_uid": instance.sop_class_uid,
        "transfer_syntax_uid": instance.transfer_syntax_uid,
        "modality": series.modality or "unknown",
        "body_part": series.body_part or "unknown",
        "region": study.region or "unknown",
        "sex": patient.sex or "unknown",
        "age_band": age_band(years),
        "study_month": study.study_date[:6] if study.study_date else "unknown",
        "manufacturer": series.manufacturer or UNKNOWN,
        "model": series.model or UNKNOWN,
        "profile_name": instance.profile_name,
        "profile_version": instance.profile_version,
        "key_id": instance.key_id,
        "size_bytes": instance.size_bytes,
        "sha256": instance.sha256,
        "archive_path": instance.archive_path,
    }
