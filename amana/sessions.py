"""Catalog sessions as every process of the shell makes them: anchored, so each commit that
appended audit events also writes the head outside the database (archive/audit/anchor.py)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from amana.settings import Settings


def anchored(sessions: sessionmaker[Session], settings: Settings) -> sessionmaker[Session]:
    from archive.audit import attach_anchor

    attach_anchor(sessions, settings.audit_anchor_path)
    return sessions
