"""Governance tables: registered sources, API tokens, profile versions and the audit trail.

They share `Base.metadata` with the catalog so that one Alembic history covers both. Like
the catalog, nothing here identifies a patient: actors are token ids, AE titles and client
addresses; objects are new UIDs, job ids and profile versions. The only names are those of
the staff who hold tokens (`users`), so that an actor in the trail leads to a person.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from archive.catalog.models import Base, BigId, enum_column


class Role(enum.StrEnum):
    AUDITOR = "auditor"
    STEWARD = "steward"
    ADMIN = "admin"
    # Datasets for AI (archive/datasets): researchers make and export cohorts; certifiers
    # seal held-out sets and are the only ones who export them.
    RESEARCHER = "researcher"
    CERTIFIER = "certifier"


class ProfileVersionStatus(enum.StrEnum):
    PROPOSED = "PROPOSED"
    # Approved by enough stewards other than the proposer, not yet activated.
    APPROVED = "APPROVED"
    ACTIVE = "ACTIVE"
    RETIRED = "RETIRED"


class Source(Base):
    """A PACS allowed to send: its calling AE title and the address it connects from."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ae_title: Mapped[str] = mapped_column(String(16), unique=True)
    # An IP address or a CIDR network; checked by the receiver at association time.
    address: Mapped[str] = mapped_column(String(64))
    profile_name: Mapped[str | None] = mapped_column(String(64))
    site: Mapped[str | None] = mapped_column(String(64))
    region: Mapped[str | None] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # The client certificate it must present on the DICOM TLS port (either or both); a
    # source bound to one is refused on the plain port.
    cert_sha256: Mapped[str | None] = mapped_column(String(64))
    cert_cn: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class User(Base):
    """A person who holds tokens. The role is the person's: every token of theirs carries it,
    and four eyes counts these rows, never tokens."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(enum_column(Role, "api_role"))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", order_by="ApiToken.id")


class ApiToken(Base):
    """A bearer token of one user. Only the SHA-256 of the secret part is stored; the role
    is read through the user, so a token never out-ranks or outlives the person."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    label: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(back_populates="tokens", lazy="joined")


class ConsoleSessionRow(Base):
    """A signed-in console session. The browser holds a random session id; the catalog
    keeps only its SHA-256, so neither a copy of the database nor a copied cookie holds a
    token. The session lives no longer than `expires_at`, ends when its row is deleted
    (sign-out), and stops with its token (revoked, expired, its user disabled)."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sid_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    token_id: Mapped[str] = mapped_column(ForeignKey("api_tokens.token_id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ProfileVersion(Base):
    """One uploaded profile text, identified by the digest the loader computes."""

    __tablename__ = "profile_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[str] = mapped_column(String(64))
    yaml_text: Mapped[str] = mapped_column(Text)
    status: Mapped[ProfileVersionStatus] = mapped_column(
        enum_column(ProfileVersionStatus, "profile_version_status")
    )
    proposed_by: Mapped[str] = mapped_column(String(64))
    proposed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    activated_by: Mapped[str | None] = mapped_column(String(64))
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    approvals: Mapped[list[ProfileApproval]] = relationship(
        back_populates="profile_version", order_by="ProfileApproval.id"
    )

    __table_args__ = (
        UniqueConstraint("name", "version", name="uq_profile_versions_name_version"),
        # At most one ACTIVE version per profile name, whatever a buggy caller does.
        Index(
            "uq_profile_versions_one_active",
            "name",
            unique=True,
            postgresql_where=text("status = 'ACTIVE'"),
            sqlite_where=text("status = 'ACTIVE'"),
        ),
    )


class ProfileApproval(Base):
    __tablename__ = "profile_approvals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    profile_version_id: Mapped[int] = mapped_column(ForeignKey("profile_versions.id"), index=True)
    approved_by: Mapped[str] = mapped_column(String(64))
    approved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    profile_version: Mapped[ProfileVersion] = relationship(back_populates="approvals")

    __table_args__ = (
        UniqueConstraint("profile_version_id", "approved_by", name="uq_profile_approvals_once"),
    )


class AuditEvent(Base):
    """One audit record, chained to the one before by `prev_hash`.

    Times are stored as the exact ISO text that was hashed, so that verification does not
    depend on how a database round-trips time zones.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    occurred_at: Mapped[str] = mapped_column(String(32), index=True)
    event_id: Mapped[str] = mapped_column(String(8), index=True)
    event_type: Mapped[str | None] = mapped_column(String(8))
    action: Mapped[str] = mapped_column(String(1))
    outcome: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    actor_role: Mapped[str | None] = mapped_column(String(16))
    client_address: Mapped[str | None] = mapped_column(String(64))
    object_type: Mapped[str | None] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(128), index=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """A single row every appender locks first, so appends form one chain."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
