"""What a job's registered source decides for its instance: the profile it runs under and
the region its study records."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.engine import Deidentifier, ProfileError
from anonymizer.errors import AmanaError, QuarantineError, QuarantineReason
from archive.catalog.models_governance import Source
from archive.governance.watcher import ProfileRegistry
from archive.work.jobs import Claim

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceTerms:
    """A source's profile name (None: the default one) and region (None: the one the
    profile derives from the header)."""

    profile_name: str | None = None
    region: str | None = None


UNATTRIBUTED = SourceTerms()


def source_terms(
    sessions: sessionmaker[Session], claims: Sequence[Claim]
) -> dict[int, SourceTerms]:
    """The terms of a batch's sources, read once per batch: an edit of a source applies to
    its jobs not yet processed."""
    wanted = sorted({claim.source_id for claim in claims if claim.source_id is not None})
    if not wanted:
        return {}
    with sessions() as session:
        rows = session.execute(
            select(Source.id, Source.profile_name, Source.region).where(Source.id.in_(wanted))
        ).all()
    return {int(row[0]): SourceTerms(row[1], row[2]) for row in rows}


def engine_for(
    default: Deidentifier, profiles: ProfileRegistry | None, profile_name: str | None
) -> Deidentifier | QuarantineError:
    """The engine for a source's profile: `default` (AMANA_PROFILE's) unless the source names
    another. A profile that cannot be loaded quarantines the instance (kept, retried by a
    steward once the profile loads) rather than running it under another profile."""
    if profile_name is None or profile_name == default.profile.name:
        return default
    if profiles is None:
        return QuarantineError(
            QuarantineReason.PROCESSING_ERROR, "no profile registry in this worker"
        )
    try:
        return profiles.deidentifier(profile_name, default.key)
    except (AmanaError, ProfileError, OSError, ValueError) as exc:
        log.error("profile %s of a source cannot be loaded: %s", profile_name, type(exc).__name__)
        return QuarantineError(
            QuarantineReason.PROCESSING_ERROR, "the source's profile cannot be loaded"
        )
