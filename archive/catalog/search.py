"""Catalog search and study detail, shared by the API and the command line.

Everything here reads pseudonymous data only: new UIDs, shifted dates, cleaned
descriptions, regions, counts and the profile versions that processed each instance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, select
from sqlalchemy.orm import Session

from anonymizer.errors import RejectError
from archive.catalog.models import (
    Instance,
    Job,
    Patient,
    QuarantineEntry,
    QuarantineStatus,
    Series,
    Study,
    StudyStatus,
)
from archive.catalog.models_governance import Source
from archive.catalog.reports import ReportFilter, received_where

DATE = re.compile(r"^\d{8}$")

# What the audit trail holds instead of a free-text filter value that matched nothing: such a
# value could be anything a user typed, a patient's name included (API and command line).
UNMATCHED = "(matched nothing)"


@dataclass(frozen=True)
class StudyFilter:
    date_from: str | None = None  # YYYYMMDD, shifted study date, inclusive
    date_to: str | None = None  # YYYYMMDD, inclusive
    modality: str | None = None
    region: str | None = None
    profile_version: str | None = None
    status: str | None = None
    # Where and when the study arrived: the registered source's AE title and the UTC days
    # (YYYY-MM-DD, inclusive) its instances were received (archive/catalog/reports.py).
    source: str | None = None
    received_from: str | None = None
    received_to: str | None = None

    def __post_init__(self) -> None:
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value is not None and not DATE.match(value):
                raise RejectError(f"{name} must be YYYYMMDD", code="bad_filter")
        # Checked the way the reports check them: a bad date is refused, never ignored.
        ReportFilter(self.received_from, self.received_to)
        if self.status is not None and self.status not in StudyStatus.__members__:
            raise RejectError("status must be RECEIVING or COMPLETE", code="bad_filter")

    def as_audit_detail(self) -> dict[str, str]:
        """The filters that were given (callers drop free-text values that matched nothing)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _conditions(flt: StudyFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if flt.date_from:
        where.append(Study.study_date >= flt.date_from)
    if flt.date_to:
        where.append(Study.study_date <= flt.date_to)
    if flt.region:
        where.append(Study.region == flt.region)
    if flt.profile_version:
        # A study may hold instances processed under several versions: match any of them.
        where.append(
            exists(
                select(Instance.id)
                .join(Series, Series.id == Instance.series_id)
                .where(Series.study_id == Study.id)
                .where(Instance.profile_version == flt.profile_version)
            )
        )
    if flt.modality:
        where.append(
            exists(
                select(Series.id)
                .where(Series.study_id == Study.id)
                .where(Series.modality == flt.modality.upper())
            )
        )
    if flt.status:
        where.append(Study.status == StudyStatus(flt.status))
    if flt.source or flt.received_from or flt.received_to:
        arrival = ReportFilter(flt.received_from, flt.received_to, flt.source)
        where.append(
            exists(
                select(Job.id)
                .join(Instance, Instance.id == Job.instance_id)
                .join(Series, Series.id == Instance.series_id)
                .outerjoin(Source, Source.id == Job.source_id)
                .where(Series.study_id == Study.id)
                .where(and_(True, *received_where(arrival)))
            )
        )
    return where


STUDY_COLUMNS = [
    "study_uid",
    "patient_pseudonym",
    "patient_sex",
    "patient_birth_year_band",
    "patient_age",
    "study_date",
    "description",
    "region",
    "modalities",
    "body_parts",
    "series",
    "instances",
    "status",
    "profile",
    "profile_version",
    "profile_versions",
    "key_id",
    "first_instance_at",
    "completed_at",
]


def _study_query(flt: StudyFilter) -> Select[Study, Patient]:
    return (
        select(Study, Patient)
        .join(Patient, Patient.id == Study.patient_id)
        .where(and_(True, *_conditions(flt)))
    )


def count_studies(session: Session, flt: StudyFilter) -> int:
    query = select(func.count()).select_from(Study).where(and_(True, *_conditions(flt)))
    return int(session.scalar(query) or 0)


def search_studies(
    session: Session, flt: StudyFilter, *, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    rows = session.execute(_study_query(flt).order_by(Study.id).limit(limit).offset(offset)).all()
    return _summaries(session, [(study, patient) for study, patient in rows])


def _summaries(session: Session, rows: Sequence[tuple[Study, Patient]]) -> list[dict[str, Any]]:
    if not rows:
        return []
    ids = [study.id for study, _ in rows]
    summary: dict[int, dict[str, Any]] = {
        i: {"series": 0, "instances": 0, "mods": set(), "parts": set(), "versions": set()}
        for i in ids
    }
    per_series = session.execute(
        select(
            Series.study_id,
            Series.id,
            Series.modality,
            Series.body_part,
            Instance.profile_version,
            func.count(Instance.id),
        )
        .outerjoin(Instance, Instance.series_id == Series.id)
        .where(Series.study_id.in_(ids))
        .group_by(
            Series.study_id, Series.id, Series.modality, Series.body_part, Instance.profile_version
        )
    ).all()
    seen_series: set[int] = set()
    for study_id, series_id, modality, body_part, version, count in per_series:
        entry = summary[study_id]
        if series_id not in seen_series:
            seen_series.add(series_id)
            entry["series"] += 1
        entry["instances"] += count
        if modality:
            entry["mods"].add(modality)
        if body_part:
            entry["parts"].add(body_part)
        if version:
            entry["versions"].add(version)
    return [
        {
            "study_uid": study.study_uid,
            "patient_pseudonym": patient.pseudonym,
            "patient_sex": patient.sex,
            "patient_birth_year_band": patient.birth_year_band,
            "patient_age": study.patient_age,
            "study_date": study.study_date,
            "description": study.description,
            "region": study.region,
            "modalities": sorted(summary[study.id]["mods"]),
            "body_parts": sorted(summary[study.id]["parts"]),
            "series": summary[study.id]["series"],
            "instances": summary[study.id]["instances"],
            "status": study.status.value,
            "profile": study.profile_name,
            "profile_version": study.profile_version,
            "profile_versions": sorted(summary[study.id]["versions"]),
            "key_id": study.key_id,
            "first_instance_at": _iso(study.first_instance_at),
            "completed_at": _iso(study.completed_at),
        }
        for study, patient in rows
    ]


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def study_detail(session: Session, study_uid: str) -> dict[str, Any]:
    """One study with its series, instances and processing history (jobs, audit events)."""
    from archive.audit import AuditFilter, search

    found = session.execute(
        select(Study, Patient)
        .join(Patient, Patient.id == Study.patient_id)
        .where(Study.study_uid == study_uid)
    ).first()
    if found is None:
        raise RejectError("no such study", code="not_found")
    study, patient = found
    detail = _summaries(session, [(study, patient)])[0]
    series_rows = session.scalars(
        select(Series).where(Series.study_id == study.id).order_by(Series.series_number, Series.id)
    ).all()
    instances = session.scalars(
        select(Instance)
        .where(Instance.series_id.in_([s.id for s in series_rows]))
        .order_by(Instance.instance_number, Instance.id)
    ).all()
    by_series: dict[int, list[Instance]] = {}
    for inst in instances:
        by_series.setdefault(inst.series_id, []).append(inst)
    detail["series_list"] = [
        {
            "series_uid": s.series_uid,
            "modality": s.modality,
            "series_number": s.series_number,
            "description": s.description,
            "body_part": s.body_part,
            "instances": [_instance_row(i) for i in by_series.get(s.id, [])],
        }
        for s in series_rows
    ]
    jobs = session.scalars(
        select(Job).where(Job.instance_id.in_([i.id for i in instances])).order_by(Job.id)
    ).all()
    sop_by_id = {i.id: i.sop_uid for i in instances}
    detail["jobs"] = [
        {
            "job_id": j.id,
            "sop_uid": sop_by_id.get(j.instance_id or -1),
            "source_kind": j.source_kind,
            "calling_ae": j.calling_ae,
            "status": j.status.value,
            "attempts": j.attempts,
            "duplicate": j.duplicate,
            "received_at": _iso(j.received_at),
            "finished_at": _iso(j.finished_at),
        }
        for j in jobs
    ]
    _, events = search(session, AuditFilter(object_id=study_uid), limit=1000)
    detail["audit"] = events
    return detail


def _instance_row(inst: Instance) -> dict[str, Any]:
    return {
        "sop_uid": inst.sop_uid,
        "sop_class_uid": inst.sop_class_uid,
        "transfer_syntax_uid": inst.transfer_syntax_uid,
        "instance_number": inst.instance_number,
        "size_bytes": inst.size_bytes,
        "sha256": inst.sha256,
        "profile": inst.profile_name,
        "profile_version": inst.profile_version,
        "key_id": inst.key_id,
        "pixel_actions": [a for a in inst.pixel_actions.split(",") if a],
        "archived_at": _iso(inst.archived_at),
    }


# --- quarantine -----------------------------------------------------------------------------


@dataclass(frozen=True)
class QuarantineFilter:
    reason: str | None = None
    status: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in QuarantineStatus.__members__:
            raise RejectError("status must be HELD, RELEASED or PURGED", code="bad_filter")


QUARANTINE_COLUMNS = [
    "id",
    "job_id",
    "reason",
    "message",
    "status",
    "size_bytes",
    "calling_ae",
    "received_at",
    "quarantined_at",
]


def _quarantine_where(flt: QuarantineFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if flt.reason:
        where.append(QuarantineEntry.reason == flt.reason)
    if flt.status:
        where.append(QuarantineEntry.status == QuarantineStatus(flt.status))
    return where


def search_quarantine(
    session: Session, flt: QuarantineFilter, *, limit: int = 100, offset: int = 0
) -> tuple[int, list[dict[str, Any]]]:
    where = _quarantine_where(flt)
    total = session.scalar(
        select(func.count()).select_from(QuarantineEntry).where(and_(True, *where))
    )
    rows = session.execute(
        select(QuarantineEntry, Job.calling_ae, Job.received_at)
        .join(Job, Job.id == QuarantineEntry.job_id)
        .where(and_(True, *where))
        .order_by(QuarantineEntry.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return int(total or 0), [
        {
            "id": entry.id,
            "job_id": entry.job_id,
            "reason": entry.reason,
            "message": entry.message,
            "status": entry.status.value,
            "size_bytes": entry.size_bytes,
            "calling_ae": calling_ae,
            "received_at": _iso(received_at),
            "quarantined_at": _iso(entry.created_at),
        }
        for entry, calling_ae, received_at in rows
    ]
