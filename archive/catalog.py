"""Catalog rows for one archived instance, written in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from anonymizer.outcome import InstanceFacts
from archive.models import Instance, Patient, Series, Study, StudyStatus

T = TypeVar("T")


def find_instance(session: Session, sop_uid: str) -> Instance | None:
    return session.scalars(select(Instance).where(Instance.sop_uid == sop_uid)).first()


def _get_or_create(session: Session, model: type[T], where: object, **values: object) -> T:
    row = session.scalars(select(model).where(where)).first()  # type: ignore[arg-type]
    if row is not None:
        return row
    # A savepoint, so a concurrent worker inserting the same patient/study/series only costs
    # this insert, not the whole transaction.
    try:
        with session.begin_nested():
            row = model(**values)
            session.add(row)
    except IntegrityError:
        row = session.scalars(select(model).where(where)).one()  # type: ignore[arg-type]
    return row


def record_instance(
    session: Session,
    facts: InstanceFacts,
    *,
    archive_path: str,
    sha256: str,
    size_bytes: int,
    now: datetime,
) -> Instance:
    patient = _get_or_create(
        session,
        Patient,
        Patient.pseudonym == facts.patient_pseudonym,
        pseudonym=facts.patient_pseudonym,
        sex=facts.patient_sex,
        birth_year_band=facts.patient_birth_year_band,
    )
    study = _get_or_create(
        session,
        Study,
        Study.study_uid == facts.study_uid,
        study_uid=facts.study_uid,
        patient_id=patient.id,
        study_date=facts.study_date,
        description=facts.study_description,
        patient_age=facts.patient_age,
        region=facts.region,
        profile_name=facts.profile_name,
        profile_version=facts.profile_version,
        key_id=facts.key_id,
        status=StudyStatus.RECEIVING,
        first_instance_at=now,
        last_instance_at=now,
    )
    study.last_instance_at = now
    if study.status == StudyStatus.COMPLETE:
        # A late instance reopens the study until it is stable again.
        study.status = StudyStatus.RECEIVING
        study.completed_at = None
    series = _get_or_create(
        session,
        Series,
        Series.series_uid == facts.series_uid,
        series_uid=facts.series_uid,
        study_id=study.id,
        modality=facts.modality,
        series_number=facts.series_number,
        description=facts.series_description,
        body_part=facts.body_part,
    )
    instance = Instance(
        sop_uid=facts.sop_instance_uid,
        series_id=series.id,
        sop_class_uid=facts.sop_class_uid,
        transfer_syntax_uid=facts.transfer_syntax_uid,
        instance_number=facts.instance_number,
        size_bytes=size_bytes,
        sha256=sha256,
        archive_path=archive_path,
        profile_name=facts.profile_name,
        profile_version=facts.profile_version,
        key_id=facts.key_id,
        pixel_actions=",".join(facts.pixel_actions),
        archived_at=now,
    )
    session.add(instance)
    session.flush()
    return instance
