"""Read-side queries shared by the command line and the HTTP API (pseudonymous data only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive.catalog.models import Instance, Job, JobStatus, Patient, QuarantineEntry, Series, Study


def list_studies(session: Session, *, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
    studies = session.execute(
        select(Study, Patient.pseudonym)
        .join(Patient, Patient.id == Study.patient_id)
        .order_by(Study.id)
        .limit(limit)
        .offset(offset)
    ).all()
    if not studies:
        return []
    ids = [s.id for s, _ in studies]
    per_series = session.execute(
        select(Series.study_id, Series.modality, func.count(Instance.id))
        .join(Instance, Instance.series_id == Series.id)
        .where(Series.study_id.in_(ids))
        .group_by(Series.id, Series.study_id, Series.modality)
    ).all()
    summary: dict[int, dict[str, Any]] = {
        i: {"series": 0, "instances": 0, "mods": set()} for i in ids
    }
    for study_id, modality, count in per_series:
        entry = summary[study_id]
        entry["series"] += 1
        entry["instances"] += count
        if modality:
            entry["mods"].add(modality)
    return [
        {
            "study_uid": study.study_uid,
            "patient_pseudonym": pseudonym,
            "study_date": study.study_date,
            "description": study.description,
            "region": study.region,
            "modalities": sorted(summary[study.id]["mods"]),
            "series": summary[study.id]["series"],
            "instances": summary[study.id]["instances"],
            "status": study.status.value,
            "profile": study.profile_name,
            "profile_version": study.profile_version,
        }
        for study, pseudonym in studies
    ]


def list_quarantine(
    session: Session, *, limit: int = 1000, offset: int = 0
) -> list[dict[str, Any]]:
    rows = session.execute(
        select(QuarantineEntry, Job.calling_ae, Job.received_at)
        .join(Job, Job.id == QuarantineEntry.job_id)
        .order_by(QuarantineEntry.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return [
        {
            "id": entry.id,
            "job_id": entry.job_id,
            "reason": entry.reason,
            "message": entry.message,
            "status": entry.status.value,
            "size_bytes": entry.size_bytes,
            "calling_ae": calling_ae,
            "received_at": received_at.isoformat() if received_at else None,
            "quarantined_at": entry.created_at.isoformat() if entry.created_at else None,
        }
        for entry, calling_ae, received_at in rows
    ]


def job_counts(session: Session) -> dict[str, int]:
    counts = {status.value: 0 for status in JobStatus}
    for status, count in session.execute(select(Job.status, func.count()).group_by(Job.status)):
        counts[status.value] = count
    return counts
