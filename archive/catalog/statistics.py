"""Catalog statistics for auditors: counts per region, modality and month of receipt, and
quarantine rates by reason (API and command line)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive.catalog.models import (
    Instance,
    Job,
    JobStatus,
    QuarantineEntry,
    Series,
    Study,
)


def _month(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "sqlite":
        return func.strftime("%Y-%m", column)
    return func.to_char(column, "YYYY-MM")


def statistics(session: Session) -> dict[str, Any]:
    """Counts per region, modality and month of receipt; quarantine rates by reason."""
    per_region = session.execute(
        select(Study.region, func.count(func.distinct(Study.id)), func.count(Instance.id))
        .outerjoin(Series, Series.study_id == Study.id)
        .outerjoin(Instance, Instance.series_id == Series.id)
        .group_by(Study.region)
        .order_by(Study.region)
    ).all()
    per_modality = session.execute(
        select(
            Series.modality,
            func.count(func.distinct(Series.study_id)),
            func.count(func.distinct(Series.id)),
            func.count(Instance.id),
        )
        .outerjoin(Instance, Instance.series_id == Series.id)
        .group_by(Series.modality)
        .order_by(Series.modality)
    ).all()
    study_month = _month(session, Study.first_instance_at)
    per_month = session.execute(
        select(study_month, func.count()).group_by(study_month).order_by(study_month)
    ).all()
    instance_month = _month(session, Instance.archived_at)
    instances_month: dict[str, int] = {
        month: count
        for month, count in session.execute(
            select(instance_month, func.count()).group_by(instance_month)
        )
    }
    per_version = session.execute(
        select(Instance.profile_name, Instance.profile_version, func.count())
        .group_by(Instance.profile_name, Instance.profile_version)
        .order_by(Instance.profile_name, Instance.profile_version)
    ).all()
    jobs_by_status: dict[JobStatus, int] = {
        status: count
        for status, count in session.execute(select(Job.status, func.count()).group_by(Job.status))
    }
    finished = jobs_by_status.get(JobStatus.DONE, 0) + jobs_by_status.get(JobStatus.QUARANTINED, 0)
    by_reason = session.execute(
        select(QuarantineEntry.reason, func.count())
        .group_by(QuarantineEntry.reason)
        .order_by(QuarantineEntry.reason)
    ).all()
    quarantined = sum(count for _, count in by_reason)
    return {
        "by_region": [{"region": r, "studies": s, "instances": i} for r, s, i in per_region],
        "by_modality": [
            {"modality": m, "studies": st, "series": se, "instances": i}
            for m, st, se, i in per_modality
        ],
        "by_month": [
            {"month": m, "studies": s, "instances": instances_month.get(m, 0)} for m, s in per_month
        ],
        "by_profile_version": [
            {"profile": n, "profile_version": v, "instances": c} for n, v, c in per_version
        ],
        "quarantine": {
            "finished_jobs": finished,
            "quarantined": quarantined,
            "rate": _rate(quarantined, finished),
            "by_reason": [
                {"reason": r, "count": c, "rate": _rate(c, finished)} for r, c in by_reason
            ],
        },
    }


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def statistics_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """The statistics as one flat table (for CSV): dimension, key, measure, value."""
    rows: list[dict[str, Any]] = []
    for dimension, key in (
        ("by_region", "region"),
        ("by_modality", "modality"),
        ("by_month", "month"),
        ("by_profile_version", "profile_version"),
    ):
        for entry in stats[dimension]:
            for measure, value in entry.items():
                if measure not in (key, "profile"):
                    rows.append(
                        {
                            "dimension": dimension,
                            "key": entry[key],
                            "measure": measure,
                            "value": value,
                        }
                    )
    for entry in stats["quarantine"]["by_reason"]:
        for measure in ("count", "rate"):
            rows.append(
                {
                    "dimension": "quarantine_by_reason",
                    "key": entry["reason"],
                    "measure": measure,
                    "value": entry[measure],
                }
            )
    return rows


STATISTICS_COLUMNS = ["dimension", "key", "measure", "value"]


def job_counts(session: Session) -> dict[str, int]:
    """Jobs per status, every status named (the liveness probe's backlog)."""
    counts = {status.value: 0 for status in JobStatus}
    for status, count in session.execute(select(Job.status, func.count()).group_by(Job.status)):
        counts[status.value] = count
    return counts
