"""The pseudonymous catalog. Nothing in these tables identifies a patient.

Job rows hold only what the receiver knows without parsing (the calling AE title and a
spool name made of random hex), so even the work queue carries no PHI.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only autoincrements INTEGER PRIMARY KEY; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class JobStatus(enum.StrEnum):
    RECEIVED = "RECEIVED"
    RUNNING = "RUNNING"
    # A slice of a sampled series, spooled and waiting for its series' decision
    # (archive/work/sampling.py); the sweeper releases it, it is never re-sent as such.
    HELD = "HELD"
    DONE = "DONE"
    QUARANTINED = "QUARANTINED"


class StudyStatus(enum.StrEnum):
    RECEIVING = "RECEIVING"
    COMPLETE = "COMPLETE"


class QuarantineStatus(enum.StrEnum):
    HELD = "HELD"
    # Sent back through the pipeline (e.g. after a profile fix); a new decision follows.
    RETRIED = "RETRIED"
    # The original was handed out of Amana (back to the hospital or for manual handling).
    RELEASED = "RELEASED"
    PURGED = "PURGED"


def enum_column(cls: type[enum.Enum], name: str) -> Enum:
    """Enums stored as checked strings: portable between SQLite and PostgreSQL."""
    return Enum(cls, name=name, native_enum=False, length=16, validate_strings=True)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    spool_name: Mapped[str] = mapped_column(String(64), unique=True)
    source_kind: Mapped[str] = mapped_column(String(16), default="dicom")
    calling_ae: Mapped[str | None] = mapped_column(String(16))
    # The registered source the job came from (association or `import --source`): its profile
    # and region are what the instance gets. A removed source leaves its jobs unattributed.
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="SET NULL"))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[JobStatus] = mapped_column(enum_column(JobStatus, "job_status"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error_code: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Re-sends by the sweeper since the job was last sent for a new reason: each one waits
    # twice as long as the one before (archive/work/jobs.py, `jobs_to_resend`).
    resends: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instances.id"))
    duplicate: Mapped[bool] = mapped_column(default=False)
    # Set on slices of a sampled series (archive/work/sampling.py): the series' key (the
    # keyed pseudonym of its UID), the slice's Instance Number, and what the pixel step
    # must do (anonymizer.pixels.PixelMode: screen, examine; auto once the series was
    # found clean). NULL pixel_mode: not looked at yet.
    series_key: Mapped[str | None] = mapped_column(String(64))
    instance_number: Mapped[int | None] = mapped_column(Integer)
    pixel_mode: Mapped[str | None] = mapped_column(String(16))
    # The ingest node whose spool holds the job's original (AMANA_NODE): only that node's
    # workers run it, only that node's sweeper re-sends it. NULL only for jobs made by tools
    # and tests that run jobs in-process.
    node: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_jobs_status_received", "status", "received_at"),
        # Each node's backlog and recent rates (archive/work/nodes.py).
        Index("ix_jobs_node_status_finished", "node", "status", "finished_at"),
        Index("ix_jobs_series_key_status", "series_key", "status"),
        # Reports and study search by source and day (archive/catalog/reports.py).
        Index("ix_jobs_instance_id", "instance_id"),
        Index("ix_jobs_source_received", "source_id", "received_at"),
    )


class Node(Base):
    """An ingest node as its sweeper last reported it (archive/work/nodes.py)."""

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # How often it promised to report: a node is shown as down after a few missed reports.
    heartbeat_every_s: Mapped[float] = mapped_column(Float)
    version: Mapped[str] = mapped_column(String(64))


class SamplingState(enum.StrEnum):
    HOLDING = "HOLDING"  # slices arrive and are held until the series stops growing
    SAMPLING = "SAMPLING"  # its first, middle and last slice are being screened
    CLEAN = "CLEAN"  # the samples showed no text: slices are archived undecoded
    TEXT = "TEXT"  # a sample (or a late slice) showed text: every slice is examined


class SeriesSampling(Base):
    """One sampled series (anonymizer/pixels/sampling.py): where its decision stands."""

    __tablename__ = "series_sampling"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    series_key: Mapped[str] = mapped_column(String(64), unique=True)
    # The study's UID as the catalog shows it: its study is not complete while slices of
    # this series wait.
    study_uid: Mapped[str | None] = mapped_column(String(64), index=True)
    state: Mapped[SamplingState] = mapped_column(enum_column(SamplingState, "sampling_state"))
    last_held_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_series_sampling_state_held", "state", "last_held_at"),)


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True)
    sex: Mapped[str | None] = mapped_column(String(4))
    birth_year_band: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    studies: Mapped[list[Study]] = relationship(back_populates="patient")


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    study_date: Mapped[str | None] = mapped_column(String(8))
    description: Mapped[str | None] = mapped_column(Text)
    patient_age: Mapped[str | None] = mapped_column(String(8))
    region: Mapped[str | None] = mapped_column(String(64))
    profile_name: Mapped[str] = mapped_column(String(64))
    profile_version: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[StudyStatus] = mapped_column(enum_column(StudyStatus, "study_status"))
    first_instance_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_instance_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    patient: Mapped[Patient] = relationship(back_populates="studies")
    series: Mapped[list[Series]] = relationship(back_populates="study")


class Series(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    modality: Mapped[str | None] = mapped_column(String(16))
    series_number: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)
    body_part: Mapped[str | None] = mapped_column(String(64))
    # The equipment as the de-identified file names it (General Equipment Module, kept by
    # retain_device_identity): technical attributes for cohorts and fairness by machine.
    # NULL on series cataloged before migration 0009.
    manufacturer: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(64))

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series")


class Instance(Base):
    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sop_uid: Mapped[str] = mapped_column(String(64), unique=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    instance_number: Mapped[int | None] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    archive_path: Mapped[str] = mapped_column(String(255))
    profile_name: Mapped[str] = mapped_column(String(64))
    profile_version: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64))
    pixel_actions: Mapped[str] = mapped_column(String(255), default="")
    archived_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    series: Mapped[Series] = relationship(back_populates="instances")


class QuarantineEntry(Base):
    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), unique=True)
    reason: Mapped[str] = mapped_column(String(64), index=True)
    message: Mapped[str] = mapped_column(Text)
    stored_name: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[QuarantineStatus] = mapped_column(
        enum_column(QuarantineStatus, "quarantine_status")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
