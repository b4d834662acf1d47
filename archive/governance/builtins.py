"""The profiles shipped in the profiles folder, registered as catalog versions.

Workers run what the catalog says is active, and a steward's first proposal of a profile is
diffed against what runs: both need the shipped profiles to be versions like any other. Each
profile file whose name has no version yet becomes one, ACTIVE, proposed and activated by
the "system" actor, in one audited transaction. A name already in the catalog is left
alone: a newer shipped file is proposed by a steward like any other change.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.engine import ProfileError, load_profile
from archive import audit
from archive.catalog.models_governance import ProfileVersion, ProfileVersionStatus
from archive.governance.profile_text import NAME_PATTERN
from archive.work.jobs import utcnow

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "system"


def shipped_profiles(profiles_dir: Path) -> dict[str, tuple[str, str]]:
    """{name: (version, text)} for every file of the folder that loads as a profile under
    its own name (region tables, rule libraries and other data files do not)."""
    found: dict[str, tuple[str, str]] = {}
    for file in sorted(profiles_dir.glob("*.yaml")):
        name = file.stem
        if not NAME_PATTERN.match(name):
            continue
        try:
            profile = load_profile(name, profiles_dir)
            text = file.read_text(encoding="utf-8")
        except (ProfileError, OSError, UnicodeDecodeError):
            continue
        if profile.name == name:
            found[name] = (profile.version, text)
    return found


def register_builtin_profiles(sessions: sessionmaker[Session], profiles_dir: Path) -> list[str]:
    """Register the shipped profiles whose name the catalog does not know yet; returns
    "name@version" of those registered now. Safe to call from every process at start: one
    that loses the race to another finds the rows on its next look and does nothing."""
    shipped = shipped_profiles(profiles_dir)
    if not shipped:
        return []
    try:
        with sessions.begin() as session:
            return _register(session, shipped)
    except IntegrityError:
        # Another process registered the same rows meanwhile: theirs stand.
        return []


def _register(session: Session, shipped: dict[str, tuple[str, str]]) -> list[str]:
    known = set(session.scalars(select(ProfileVersion.name).distinct()))
    now = utcnow()
    added: list[str] = []
    for name, (version, text) in sorted(shipped.items()):
        if name in known:
            continue
        session.add(
            ProfileVersion(
                name=name,
                version=version,
                yaml_text=text,
                status=ProfileVersionStatus.ACTIVE,
                proposed_by=SYSTEM_ACTOR,
                proposed_at=now,
                activated_by=SYSTEM_ACTOR,
                activated_at=now,
            )
        )
        added.append(f"{name}@{version}")
    if not added:
        return []
    session.flush()
    audit.append(
        session,
        audit.AuditRecord(
            event_id=audit.EventId.SECURITY_ALERT,
            event_type=audit.EventType.SECURITY_CONFIGURATION,
            action=audit.Action.CREATE,
            actor=SYSTEM_ACTOR,
            object_type="profile_version",
            detail={"step": "register built-in profiles", "registered": added},
        ),
    )
    log.info("built-in profiles registered: %s", ", ".join(added))
    return added
