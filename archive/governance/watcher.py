"""The active profile version of each name, and the workers that follow them.

Workers never stop for a profile change: each one asks before a job, at most every few
seconds, and switches between two jobs. Each profile name has at most one ACTIVE version
(enforced by activation and by a partial unique index).
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
from anonymizer.outcome import PseudonymKey
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
    """The version workers must use for `name` (without a name: the most recently activated
    of any, for callers that only ask whether anything was activated)."""
    row = active_version_row(session, name)
    if row is None:
        return None
    return ActiveProfile(id=row.id, name=row.name, version=row.version, yaml_text=row.yaml_text)


class ProfileRegistry:
    """What a worker asks before each job: the profile to use now for a profile name.

    Keyed by profile name and loaded lazily: a worker compiles only the profiles its jobs
    name. At most every `interval_s` seconds one cheap query reads the (name, version) of
    every ACTIVE row; a name whose active version changed is reloaded on its next use. A name
    with no active version uses its file in the profiles folder. A version that no longer
    loads to the same digest (a parent profile changed on disk since approval) is refused,
    and the worker keeps the profile it had for that name.
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
        self._active: dict[str, str] = {}
        self._profiles: dict[str, Profile] = {}
        self._engines: dict[str, Deidentifier] = {}
        self._checked_at = float("-inf")

    def current(self, name: str | None = None) -> Profile:
        """The profile for `name` (AMANA_PROFILE's default when None)."""
        name = name or self.default_name
        if time.monotonic() - self._checked_at >= self.interval_s:
            self._poll()
        version = self._active.get(name)
        held = self._profiles.get(name)
        if version is None:
            # Cheap: the loader caches by file stamps, and an edited file is picked up.
            self._profiles[name] = load_profile(name, self.profiles_dir)
        elif held is None or held.version != version:
            self._load(name, version, held)
        return self._profiles[name]

    def deidentifier(self, name: str | None, key: PseudonymKey) -> Deidentifier:
        """The engine for `name`'s current profile, rebuilt only when its version changed
        (compiling a profile is not free)."""
        profile = self.current(name)
        engine = self._engines.get(profile.name)
        if engine is None or engine.profile.version != profile.version or engine.key != key:
            engine = Deidentifier(profile, key)
            self._engines[profile.name] = engine
        return engine

    def _poll(self) -> None:
        with self.sessions() as session:
            rows = session.execute(
                select(ProfileVersion.name, ProfileVersion.version).where(
                    ProfileVersion.status == ProfileVersionStatus.ACTIVE
                )
            ).all()
        self._active = {str(name): str(version) for name, version in rows}
        self._checked_at = time.monotonic()

    def _load(self, name: str, version: str, held: Profile | None) -> None:
        with self.sessions() as session:
            row = session.scalars(
                select(ProfileVersion).where(
                    ProfileVersion.name == name, ProfileVersion.version == version
                )
            ).first()
            text = row.yaml_text if row is not None else None
        profile: Profile | None = None
        if text is not None:
            try:
                profile = load_profile_text(text, self.profiles_dir)
            except RejectError as exc:
                log.error("active profile version %s does not load: %s", version, exc)
        if profile is None or profile.version != version:
            log.error(
                "active profile version %s resolves to a different digest now; keeping %s",
                version,
                held.version if held else "nothing",
            )
            if held is None:
                raise RejectError("the active profile version cannot be loaded", code="profile")
            return
        log.info("profile %s: now using version %s", name, version)
        self._profiles[name] = profile


class ActiveProfileWatcher(ProfileRegistry):
    """The registry seen from one profile name, AMANA_PROFILE's (the default for sources with
    no profile and for unattributed jobs)."""


def refresh_deidentifier(current: Deidentifier, watcher: ProfileRegistry) -> Deidentifier:
    """The worker's default engine for the next job: the same object unless the default
    profile's active version changed, then a new one with the same key."""
    profile = watcher.current()
    if profile.version == current.profile.version:
        return current
    return Deidentifier(profile, current.key)
