"""The re-identification thresholds an export must meet: the `datasets` section of the
profiles that produced its instances, as they stand now (the active version of each name;
its file in the profiles folder when none was activated), the strictest when several.

Now rather than at archiving time: a steward who raises k protects every later export of
data already archived. A profile that cannot be read makes the export fail rather than fall
back to a default that may be weaker than the steward's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from anonymizer.errors import RejectError
from anonymizer.profile_loader import ProfileError, load_profile_file
from anonymizer.profile_model import DatasetPrivacy, Profile
from archive.governance.profile_text import NAME_PATTERN, load_profile_text
from archive.governance.watcher import active_profile


class ThresholdsUnknown(RejectError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"the privacy thresholds of profile {name!r} cannot be read: export refused",
            code="profile_unknown",
        )


@dataclass(frozen=True)
class Thresholds:
    k: int
    l_diversity: int
    # profile name -> (version read, its k, its l): what the card and the audit event cite
    sources: dict[str, tuple[str, int, int]]


def _current(session: Session, name: str, profiles_dir: Path) -> Profile:
    active = active_profile(session, name)
    try:
        if active is not None:
            return load_profile_text(active.yaml_text, profiles_dir)
        if not NAME_PATTERN.match(name):
            raise ThresholdsUnknown(name)  # a catalog value is never taken for a path
        return load_profile_file(profiles_dir / f"{name}.yaml")
    except (ProfileError, RejectError) as exc:
        if isinstance(exc, ThresholdsUnknown):
            raise
        raise ThresholdsUnknown(name) from exc


def thresholds_for(
    session: Session, profile_names: Iterable[str], profiles_dir: Path
) -> Thresholds:
    """The strictest k and l of the current versions of `profile_names` (the defaults of
    the profile format when there are none)."""
    default = DatasetPrivacy()
    sources: dict[str, tuple[str, int, int]] = {}
    for name in sorted(set(profile_names)):
        profile = _current(session, name, profiles_dir)
        policy = profile.datasets
        sources[name] = (profile.version, policy.k_anonymity, policy.l_diversity)
    if not sources:
        return Thresholds(default.k_anonymity, default.l_diversity, {})
    return Thresholds(
        max(k for _, k, _ in sources.values()),
        max(l_ for _, _, l_ in sources.values()),
        sources,
    )
