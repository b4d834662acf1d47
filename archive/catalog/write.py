"""Catalog rows for archived instances, written in the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from anonymizer.outcome import InstanceFacts
from archive.catalog.models import Instance, Patient, Series, Study, StudyStatus


@dataclass(frozen=True)
class NewInstance:
    """One de-identified instance already written to the archive, to be cataloged."""

    facts: InstanceFacts
    archive_path: str
    sha256: str
    size_bytes: int


def archived_instance_ids(session: Session, sop_uids: Iterable[str]) -> dict[str, int]:
    """Instance ids by SOP UID for those of `sop_uids` already in the catalog."""
    wanted = sorted(set(sop_uids))
    if not wanted:
        return {}
    rows = session.execute(
        select(Instance.sop_uid, Instance.id).where(Instance.sop_uid.in_(wanted))
    ).all()
    return {sop_uid: instance_id for sop_uid, instance_id in rows}


# --- a batch: each kind of row looked up once, created in one statement ----------------------


def record_instances(
    session: Session, items: Sequence[NewInstance], *, now: datetime
) -> dict[str, int]:
    """Catalog rows for a batch of new instances (distinct SOP UIDs); returns the new
    instance ids by SOP UID.

    Patients, studies and series are looked up once per batch, and only as far as needed:
    when every series is known, one SELECT answers for all three. Raises IntegrityError
    when a concurrent transaction created one of the same rows after the lookups: the
    caller rolls back and tries again, and the new lookups find those rows.
    """
    if not items:
        return {}
    series_ids = _series_ids(session, items)
    missing = [item for item in items if item.facts.series_uid not in series_ids]
    created_studies: set[str] = set()
    if missing:
        study_ids = _study_ids(session, missing, now=now)
        created_studies = study_ids.created
        series_ids.update(_create_series(session, missing, study_ids.ids))
    _touch_studies(session, {i.facts.study_uid for i in items} - created_studies, now=now)
    # Sorted, so two workers inserting overlapping batches take index locks in one order.
    rows = [
        _instance_values(item, series_ids[item.facts.series_uid], now)
        for item in sorted(items, key=lambda i: i.facts.sop_instance_uid)
    ]
    inserted = session.execute(insert(Instance).returning(Instance.sop_uid, Instance.id), rows)
    return {sop_uid: instance_id for sop_uid, instance_id in inserted}


def _first_by(
    items: Iterable[NewInstance], key: Callable[[InstanceFacts], str]
) -> dict[str, InstanceFacts]:
    """The facts of the first instance for each distinct key, in key order: the first
    instance of a study describes it, and sorted inserts take index locks in the same order
    in every worker."""
    first: dict[str, InstanceFacts] = {}
    for item in items:
        first.setdefault(key(item.facts), item.facts)
    return dict(sorted(first.items()))


def _series_ids(session: Session, items: Sequence[NewInstance]) -> dict[str, int]:
    uids = sorted({item.facts.series_uid for item in items})
    rows = session.execute(
        select(Series.series_uid, Series.id).where(Series.series_uid.in_(uids))
    ).all()
    return {series_uid: series_id for series_uid, series_id in rows}


@dataclass(frozen=True)
class _StudyIds:
    ids: dict[str, int]
    created: set[str]


def _study_ids(session: Session, items: Sequence[NewInstance], *, now: datetime) -> _StudyIds:
    studies = _first_by(items, lambda facts: facts.study_uid)
    rows = session.execute(
        select(Study.study_uid, Study.id).where(Study.study_uid.in_(list(studies)))
    ).all()
    ids = {study_uid: study_id for study_uid, study_id in rows}
    new = {uid: facts for uid, facts in studies.items() if uid not in ids}
    if not new:
        return _StudyIds(ids, set())
    patient_ids = _patient_ids(session, new.values())
    inserted = session.execute(
        insert(Study).returning(Study.study_uid, Study.id),
        [_study_values(facts, patient_ids[facts.patient_pseudonym], now) for facts in new.values()],
    )
    ids.update({study_uid: study_id for study_uid, study_id in inserted})
    return _StudyIds(ids, set(new))


def _patient_ids(session: Session, studies: Iterable[InstanceFacts]) -> dict[str, int]:
    patients: dict[str, InstanceFacts] = {}
    for facts in studies:
        patients.setdefault(facts.patient_pseudonym, facts)
    wanted = sorted(patients)
    rows = session.execute(
        select(Patient.pseudonym, Patient.id).where(Patient.pseudonym.in_(wanted))
    ).all()
    ids = {pseudonym: patient_id for pseudonym, patient_id in rows}
    new = [
        {
            "pseudonym": pseudonym,
            "sex": patients[pseudonym].patient_sex,
            "birth_year_band": patients[pseudonym].patient_birth_year_band,
        }
        for pseudonym in wanted
        if pseudonym not in ids
    ]
    if new:
        inserted = session.execute(insert(Patient).returning(Patient.pseudonym, Patient.id), new)
        ids.update({pseudonym: patient_id for pseudonym, patient_id in inserted})
    return ids


def _create_series(
    session: Session, items: Sequence[NewInstance], study_ids: dict[str, int]
) -> dict[str, int]:
    rows = [
        _series_values(facts, study_ids[facts.study_uid])
        for facts in _first_by(items, lambda facts: facts.series_uid).values()
    ]
    inserted = session.execute(insert(Series).returning(Series.series_uid, Series.id), rows)
    return {series_uid: series_id for series_uid, series_id in inserted}


def _touch_studies(session: Session, study_uids: set[str], *, now: datetime) -> None:
    """A new instance keeps its study open: a study already COMPLETE is reopened until it
    is stable again. Its `completed_at` stays: the sweeper's next pass sees a RECEIVING
    study that was completed, records the reopening and clears it
    (archive/work/studies.py)."""
    if study_uids:
        session.execute(
            update(Study)
            .where(Study.study_uid.in_(sorted(study_uids)))
            .values(last_instance_at=now, status=StudyStatus.RECEIVING)
            .execution_options(synchronize_session=False)
        )


def _study_values(facts: InstanceFacts, patient_id: int, now: datetime) -> dict[str, Any]:
    return {
        "study_uid": facts.study_uid,
        "patient_id": patient_id,
        "study_date": facts.study_date,
        "description": facts.study_description,
        "patient_age": facts.patient_age,
        "region": facts.region,
        "profile_name": facts.profile_name,
        "profile_version": facts.profile_version,
        "key_id": facts.key_id,
        "status": StudyStatus.RECEIVING,
        "first_instance_at": now,
        "last_instance_at": now,
    }


def _series_values(facts: InstanceFacts, study_id: int) -> dict[str, Any]:
    return {
        "series_uid": facts.series_uid,
        "study_id": study_id,
        "modality": facts.modality,
        "series_number": facts.series_number,
        "description": facts.series_description,
        "body_part": facts.body_part,
        "manufacturer": _clip(facts.manufacturer),
        "model": _clip(facts.model),
    }


def _clip(value: str | None) -> str | None:
    """LO is 64 characters, but a file may break the rule: the catalog keeps what fits."""
    return value[:64] if value else None


def _instance_values(item: NewInstance, series_id: int, now: datetime) -> dict[str, Any]:
    facts = item.facts
    return {
        "sop_uid": facts.sop_instance_uid,
        "series_id": series_id,
        "sop_class_uid": facts.sop_class_uid,
        "transfer_syntax_uid": facts.transfer_syntax_uid,
        "instance_number": facts.instance_number,
        "size_bytes": item.size_bytes,
        "sha256": item.sha256,
        "archive_path": item.archive_path,
        "profile_name": facts.profile_name,
        "profile_version": facts.profile_version,
        "key_id": facts.key_id,
        "pixel_actions": ",".join(facts.pixel_actions),
        "archived_at": now,
    }


def record_instance(
    session: Session,
    facts: InstanceFacts,
    *,
    archive_path: str,
    sha256: str,
    size_bytes: int,
    now: datetime,
) -> Instance:
    """Catalog rows for one instance: `record_instances` for a batch of one, so it raises
    IntegrityError on the same races (the caller retries, as the pipeline does)."""
    item = NewInstance(facts, archive_path, sha256, size_bytes)
    instance_id = record_instances(session, [item], now=now)[facts.sop_instance_uid]
    return session.get_one(Instance, instance_id)
