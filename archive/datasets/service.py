"""Datasets in the catalog: create (frozen, split, sealed patients left out), seal, list, and
the permission check an export passes before anything is read.

Every function runs inside the caller's audited unit of work (archive.audit.unit): a
refusal raised here rolls back and is recorded as a failed attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from anonymizer.errors import RejectError
from archive.catalog.models import Instance, Patient, Series, Study
from archive.datasets.models import Dataset, DatasetItem, SealedPatient
from archive.datasets.query import Where, age_years, describe, select_rows
from archive.datasets.splits import DEFAULT_PROPORTIONS, assign_splits, check_proportions
from archive.governance.auth import ForbiddenError, Permission, Principal

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class DatasetError(RejectError):
    def __init__(self, message: str, code: str = "dataset_invalid") -> None:
        super().__init__(message, code=code)


class DatasetNotFound(RejectError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no dataset named {name!r}", code="not_found")


def split_key(secret: bytes) -> bytes:
    """A key for split assignment derived from the pseudonymization secret: splits cannot be
    recomputed without it, and it is never the pseudonym key itself."""
    return hmac.new(secret, b"amana-dataset-splits-v1", hashlib.sha256).digest()


def get_dataset(session: Session, name: str) -> Dataset:
    found = session.scalars(select(Dataset).where(Dataset.name == name)).first()
    if found is None:
        raise DatasetNotFound(name)
    return found


def sealed_patient_ids(session: Session) -> set[int]:
    return set(session.scalars(select(SealedPatient.patient_id)))


def create_dataset(
    session: Session,
    *,
    name: str,
    where: Where,
    secret: bytes,
    created_by: str,
    now: datetime,
    proportions: Mapping[str, float] = DEFAULT_PROPORTIONS,
    parent: str | None = None,
) -> Dataset:
    """Freeze the query's instances, patients already sealed left out, each patient's
    instances in the split of the patient, stratified by region, sex and age band."""
    if not NAME.match(name):
        raise DatasetError("a dataset name is 1-64 letters, digits, dots, dashes, underscores")
    if session.scalars(select(Dataset.id).where(Dataset.name == name)).first() is not None:
        raise DatasetError(f"dataset {name!r} exists; datasets are immutable", "conflict")
    try:
        shares = check_proportions(proportions)
    except ValueError as exc:
        raise DatasetError(str(exc)) from exc
    parent_id = get_dataset(session, parent).id if parent else None
    sealed = sealed_patient_ids(session)
    rows = [r for r in select_rows(session, where) if r["patient_id"] not in sealed]
    if not rows:
        raise DatasetError("the query selects no instance", "empty")
    strata = {r["patient"]: (r["region"], r["sex"], r["age_band"]) for r in rows}
    splits = assign_splits(split_key(secret), strata, shares)
    dataset = Dataset(
        name=name,
        parent_id=parent_id,
        query_json=json.dumps(where.as_json(), sort_keys=True),
        proportions_json=json.dumps(shares, sort_keys=True),
        patients=len(strata),
        studies=len({r["study_uid"] for r in rows}),
        instances=len(rows),
        created_by=created_by,
        created_at=now,
    )
    session.add(dataset)
    session.flush()
    session.add_all(
        DatasetItem(
            dataset_id=dataset.id,
            instance_id=r["instance_id"],
            patient_id=r["patient_id"],
            split=splits[r["patient"]],
        )
        for r in rows
    )
    session.flush()
    return dataset


def seal_dataset(session: Session, name: str, *, sealed_by: str, now: datetime) -> int:
    """Hold the dataset's patients out for certification. Returns how many were newly sealed."""
    dataset = get_dataset(session, name)
    if dataset.sealed_at is not None:
        raise DatasetError(f"dataset {name!r} is already sealed", "conflict")
    already = sealed_patient_ids(session)
    patients = set(
        session.scalars(
            select(DatasetItem.patient_id).where(DatasetItem.dataset_id == dataset.id).distinct()
        )
    )
    new = patients - already
    session.add_all(
        SealedPatient(patient_id=p, dataset_id=dataset.id, sealed_at=now) for p in sorted(new)
    )
    dataset.sealed_at = now
    dataset.sealed_by = sealed_by
    session.flush()
    return len(new)


def holds_sealed(session: Session, dataset: Dataset) -> bool:
    stmt = (
        select(func.count())
        .select_from(DatasetItem)
        .join(SealedPatient, SealedPatient.patient_id == DatasetItem.patient_id)
        .where(DatasetItem.dataset_id == dataset.id)
    )
    return bool(session.scalar(stmt))


def check_export(session: Session, dataset: Dataset, principal: Principal) -> bool:
    """Refuse an export the caller's role does not allow; True when the set holds sealed
    patients. A dataset made before a seal holds them too: it is sealed data all the same."""
    sealed = holds_sealed(session, dataset)
    needed = Permission.DATASETS_EXPORT_SEALED if sealed else Permission.DATASETS_EXPORT
    if not principal.can(needed):
        what = "a sealed certification set" if sealed else "a dataset"
        raise ForbiddenError(f"role {principal.role.value} may not export {what}")
    return sealed


def dataset_rows(session: Session, dataset: Dataset) -> list[dict[str, Any]]:
    """The frozen instances, described as at creation, each with its split."""
    stmt = (
        select(DatasetItem.split, Instance, Series, Study, Patient)
        .join(Instance, DatasetItem.instance_id == Instance.id)
        .join(Series, Instance.series_id == Series.id)
        .join(Study, Series.study_id == Study.id)
        .join(Patient, Study.patient_id == Patient.id)
        .where(DatasetItem.dataset_id == dataset.id)
        .order_by(Instance.id)
    )
    out = []
    for split, instance, series, study, patient in session.execute(stmt):
        row = describe(instance, series, study, patient, age_years(study))
        row["split"] = split
        out.append(row)
    return out


def archive_rows(session: Session) -> list[dict[str, Any]]:
    """Every archived instance, for the card's comparison with the whole archive."""
    return select_rows(session, Where())


def summary(dataset: Dataset, sealed: bool | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": dataset.name,
        "parent_id": dataset.parent_id,
        "query": json.loads(dataset.query_json),
        "proportions": json.loads(dataset.proportions_json),
        "patients": dataset.patients,
        "studies": dataset.studies,
        "instances": dataset.instances,
        "sealed_at": dataset.sealed_at.isoformat() if dataset.sealed_at else None,
        "created_by": dataset.created_by,
        "created_at": dataset.created_at.isoformat() if dataset.created_at else None,
    }
    if sealed is not None:
        out["holds_sealed_patients"] = sealed
    return out


def list_datasets(session: Session) -> list[dict[str, Any]]:
    return [summary(d) for d in session.scalars(select(Dataset).order_by(Dataset.id))]
