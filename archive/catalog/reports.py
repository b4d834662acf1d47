"""Who sent what, when, under which profile version, and what was held back and why.

The auditors' question ("which hospital sent how many studies last week, under which profile
version, and were any quarantined and why") answered from the jobs: a job holds its source
and the moment it was received, a DONE job the instance it became, a QUARANTINED one its
quarantine entry. One function serves the console, `GET /reports` and `amana catalog report`.

Days are grouped by the database (UTC); weeks (ISO) and months are folded from days here, and
studies are counted as distinct studies over the whole period, never summed over its days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from anonymizer.errors import RejectError
from archive.catalog.models import Instance, Job, JobStatus, QuarantineEntry, Series
from archive.catalog.models_governance import Source

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class ReportFilter:
    received_from: str | None = None  # YYYY-MM-DD, UTC, inclusive
    received_to: str | None = None  # YYYY-MM-DD, UTC, inclusive
    source: str | None = None  # the source's AE title
    period: Period = "day"

    def __post_init__(self) -> None:
        for name in ("received_from", "received_to"):
            value = getattr(self, name)
            if value is not None and (not ISO_DATE.match(value) or not _valid(value)):
                raise RejectError(f"{name} must be YYYY-MM-DD", code="bad_filter")
        if self.period not in PERIODS:
            raise RejectError("period must be day, week or month", code="bad_filter")


def _valid(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _day(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d", column)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")


def bucket(day: str, period: Period) -> str:
    """The period a UTC day belongs to: the day, its ISO week (2026-W48) or its month."""
    if period == "day":
        return day
    if period == "month":
        return day[:7]
    year, week, _ = date.fromisoformat(day).isocalendar()
    return f"{year}-W{week:02d}"


def received_where(flt: ReportFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if flt.received_from:
        where.append(Job.received_at >= datetime.fromisoformat(flt.received_from + "T00:00+00:00"))
    if flt.received_to:
        end = date.fromisoformat(flt.received_to) + timedelta(days=1)
        where.append(Job.received_at < datetime.fromisoformat(end.isoformat() + "T00:00+00:00"))
    if flt.source:
        where.append(Source.ae_title == flt.source)
    return where


def _source_label(ae_title: str | None, site: str | None, calling_ae: str | None) -> str:
    if ae_title is None:
        # A removed source (or a job from before sources were registered): its AE title.
        return f"(unregistered) {calling_ae or '-'}"
    return f"{ae_title} ({site})" if site else ae_title


def report(session: Session, flt: ReportFilter) -> dict[str, Any]:
    """Studies and instances per source, period and profile version; quarantines per source,
    period and reason; totals per source."""
    day = _day(session, Job.received_at)
    archived = session.execute(
        select(
            Source.ae_title,
            Source.site,
            Job.calling_ae,
            day,
            Instance.profile_name,
            Instance.profile_version,
            Series.study_id,
            func.count(func.distinct(Instance.id)),
        )
        .join(Instance, Instance.id == Job.instance_id)
        .join(Series, Series.id == Instance.series_id)
        .outerjoin(Source, Source.id == Job.source_id)
        .where(Job.status == JobStatus.DONE, Job.duplicate.is_(False))
        .where(and_(True, *received_where(flt)))
        .group_by(
            Source.ae_title,
            Source.site,
            Job.calling_ae,
            day,
            Instance.profile_name,
            Instance.profile_version,
            Series.study_id,
        )
    ).all()
    groups: dict[tuple[str, str, str, str], tuple[set[int], list[int]]] = {}
    totals: dict[str, dict[str, Any]] = {}
    for ae, site, calling, received_day, name, version, study_id, count in archived:
        source = _source_label(ae, site, calling)
        key = (source, bucket(received_day, flt.period), name, version)
        studies, instances = groups.setdefault(key, (set(), [0]))
        studies.add(study_id)
        instances[0] += count
        total = totals.setdefault(source, _empty_total(source))
        total["_studies"].add(study_id)
        total["instances"] += count
    quarantined = session.execute(
        select(
            Source.ae_title, Source.site, Job.calling_ae, day, QuarantineEntry.reason, func.count()
        )
        .join(Job, Job.id == QuarantineEntry.job_id)
        .outerjoin(Source, Source.id == Job.source_id)
        .where(and_(True, *received_where(flt)))
        .group_by(Source.ae_title, Source.site, Job.calling_ae, day, QuarantineEntry.reason)
    ).all()
    held: dict[tuple[str, str, str], int] = {}
    for ae, site, calling, received_day, reason, count in quarantined:
        source = _source_label(ae, site, calling)
        held_key = (source, bucket(received_day, flt.period), reason)
        held[held_key] = held.get(held_key, 0) + count
        total = totals.setdefault(source, _empty_total(source))
        total["quarantined"] += count
    return {
        "period": flt.period,
        "received_from": flt.received_from,
        "received_to": flt.received_to,
        "source": flt.source,
        "archived": [
            {
                "source": source,
                "period": when,
                "profile": name,
                "profile_version": version,
                "studies": len(studies),
                "instances": instances[0],
            }
            for (source, when, name, version), (studies, instances) in sorted(groups.items())
        ],
        "quarantined": [
            {"source": source, "period": when, "reason": reason, "count": count}
            for (source, when, reason), count in sorted(held.items())
        ],
        "by_source": [
            {
                "source": t["source"],
                "studies": len(t["_studies"]),
                "instances": t["instances"],
                "quarantined": t["quarantined"],
            }
            for _, t in sorted(totals.items())
        ],
    }


def _empty_total(source: str) -> dict[str, Any]:
    return {"source": source, "_studies": set(), "instances": 0, "quarantined": 0}


REPORT_COLUMNS = [
    "table",
    "source",
    "period",
    "profile",
    "profile_version",
    "reason",
    "studies",
    "instances",
    "count",
]


def report_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The report as one flat table (CSV): archived rows, then quarantined rows."""
    rows = [{"table": "archived", **row} for row in result["archived"]]
    rows += [{"table": "quarantined", **row} for row in result["quarantined"]]
    return rows


def _hour(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "sqlite":
        return func.strftime("%Y-%m-%dT%H", column)
    return func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24')


def source_activity(session: Session, today: str) -> list[dict[str, Any]]:
    """Per source: its last arrival, what arrived today (UTC) and its backlog (received,
    running or held, not yet archived or quarantined)."""
    day = _day(session, Job.received_at)
    rows = session.execute(
        select(
            Source.ae_title,
            Source.site,
            Job.calling_ae,
            func.max(Job.received_at),
            func.count().filter(day == today),
            # The backlog as the overview's total counts it (the sampled slices held too).
            func.count().filter(
                Job.status.in_([JobStatus.RECEIVED, JobStatus.RUNNING, JobStatus.HELD])
            ),
        )
        .outerjoin(Source, Source.id == Job.source_id)
        .group_by(Source.ae_title, Source.site, Job.calling_ae)
    ).all()
    merged: dict[str, dict[str, Any]] = {}
    for ae, site, calling, last, received_today, waiting in rows:
        source = _source_label(ae, site, calling)
        entry = merged.setdefault(
            source, {"source": source, "last_received": None, "today": 0, "waiting": 0}
        )
        entry["today"] += received_today
        entry["waiting"] += waiting
        stamp = last.isoformat(timespec="seconds") if last is not None else None
        if stamp is not None and (entry["last_received"] or "") < stamp:
            entry["last_received"] = stamp
    return [merged[k] for k in sorted(merged)]


def hourly_instances(session: Session, now: datetime, *, hours: int) -> list[tuple[str, int]]:
    """Jobs received per UTC hour over the last `hours` hours, the empty hours included."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    hour = _hour(session, Job.received_at)
    counts: dict[str, int] = dict(
        session.execute(
            select(hour, func.count()).where(Job.received_at >= start).group_by(hour)
        ).all()
    )
    slots = [(start + timedelta(hours=n)).strftime("%Y-%m-%dT%H") for n in range(hours)]
    return [(slot, int(counts.get(slot, 0))) for slot in slots]
