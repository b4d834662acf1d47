"""The active profile version, and the workers that follow it.

Workers never stop for a profile change: each one asks before a job, at most every few
seconds, and switches between two jobs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.engine import Deidentifier, load_profile
from anonymizer.errors import RejectError
from anonymizer.profile_model import Profile
from archive.catalog.models_governance import ProfileVersion, ProfileVersionStatus
from archive.governance.profile_text import load_profile_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveProfile:
    id: int
    name: str
    version: str
    yaml_text: str


def active_version_row(session: Session, name: str | None = None) -> ProfileVersion | None:
    query = select(ProfileVersion).where(ProfileVersion.status == ProfileVersionStatus.ACTIVE)
    if name:
        query = query.where(ProfileVersion.name == name)
    return session.scalars(
        query.order_by(ProfileVersion.activated_at.desc(), ProfileVersion.id.desc())
    ).first()


def active_profile(session: Session, name: str | None = None) -> ActiveProfile | None:
    """The version workers must use (for `name`, or the most recently activated of any)."""
    row = active_version_row(session, name)
    if row is None:
        return None
    return ActiveProfile(id=row.id, name=row.name, version=row.version, yaml_text=row.yaml_text)


class ActiveProfileWatcher:
    """What a worker asks before each job: the profile to use now.

    It reads the active version from the catalog at most every `interval_s` seconds. With no
    active version in the catalog it uses the named profile from the profiles folder. A
    version that no longer loads to the same digest (a parent profile changed on disk since
    approval) is refused, and the worker keeps the profile it had.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        profiles_dir: Path,
        default_name: str,
        *,
        interval_s: float = 30.0,
    ) -> None:
        self.sessions = sessions
        self.profiles_dir = profiles_dir
        self.default_name = default_name
        self.interval_s = interval_s
        self._profile: Profile | None = None
        self._checked_at = float("-inf")

    def current(self) -> Profile:
        if self._profile is None or time.monotonic() - self._checked_at >= self.interval_s:
            self._refresh()
        assert self._profile is not None
        return self._profile

    def _refresh(self) -> None:
        with self.sessions() as session:
            active = active_profile(session, self.default_name)
        self._checked_at = time.monotonic()
        if active is None:
            # Cheap: the loader caches by file stamps, and an edited file is picked up.
            self._profile = load_profile(self.default_name, self.profiles_dir)
            return
        if self._profile is not None and self._profile.version == active.version:
            return
        try:
            profile = load_profile_text(active.yaml_text, self.profiles_dir)
        except RejectError as exc:
            log.error("active profile version %s does not load: %s", active.version, exc)
            profile = None
        if profile is None or profile.version != active.version:
            log.error(
                "active profile version %s resolves to a different digest now; keeping %s",
                active.version,
                self._profile.version if self._profile else "nothing",
            )
            if self._profile is None:
                raise RejectError("the active profile version cannot be loaded", code="profile")
            return
        log.info("profile %s: now using version %s", active.name, active.version)
        self._profile = profile


def refresh_deidentifier(current: Deidentifier, watcher: ActiveProfileWatcher) -> Deidentifier:
    """The worker's engine for the next job: the same object unless the active version
    changed, then a new one with the same key (compiling a profile is not free)."""
    profile = watcher.current()
    if profile.version == current.profile.version:
        return current
    return Deidentifier(profile, current.key)
