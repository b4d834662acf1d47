"""Dataset tables. They share `Base.metadata` with the catalog (one Alembic history).

A dataset is frozen at creation: its rows list instance ids, and the catalog never rewrites
an archived instance, so the profile and key versions that produced each file stay what they
were. Nothing here identifies a patient: pseudonyms and new UIDs only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from archive.catalog.models import Base, BigId


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id"))
    # The query (JSON of archive.datasets.query.Where) and split options, as given.
    query_json: Mapped[str] = mapped_column(Text)
    proportions_json: Mapped[str] = mapped_column(Text)
    patients: Mapped[int] = mapped_column(Integer, default=0)
    studies: Mapped[int] = mapped_column(Integer, default=0)
    instances: Mapped[int] = mapped_column(Integer, default=0)
    # Set when `dataset seal` made its patients the held-out certification set.
    sealed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sealed_by: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DatasetItem(Base):
    """One instance of a dataset, with the split its patient was assigned to."""

    __tablename__ = "dataset_items"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    split: Mapped[str] = mapped_column(String(16))

    __table_args__ = (Index("ix_dataset_items_dataset", "dataset_id", "split"),)


class SealedPatient(Base):
    """A patient held out for certification: never in a training dataset made afterwards."""

    __tablename__ = "sealed_patients"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    sealed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
