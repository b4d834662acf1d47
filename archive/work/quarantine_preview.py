"""A steward's before/after picture of a held original: what the pixel step of the
profile in force for its source does to it now (anonymizer/pixels/preview.py).

The picture shows the original's pixels and the words OCR read in them: it is made on
request for a steward's eyes only, returned as bytes, never written to a file or a cache,
never logged. The engine runs with a throwaway pseudonym key: nothing of the picture
depends on the archive's key, and the run stores nothing.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy.orm import Session

from anonymizer.engine import Deidentifier, key_from_bytes
from anonymizer.errors import RejectError
from anonymizer.pixels.preview import InstancePreview, preview_instance
from archive.catalog.models import Job, QuarantineEntry, QuarantineStatus
from archive.catalog.models_governance import Source
from archive.governance.versions import baseline_of

MAX_ORIGINAL_BYTES = 512 * 2**20


def profile_name_of(session: Session, job: Job, default_profile: str) -> str:
    """The profile the workers apply to `job`: its source's, else the default one."""
    source = session.get(Source, job.source_id) if job.source_id is not None else None
    return (source.profile_name if source is not None else None) or default_profile


def preview_entry(
    session: Session,
    entry_id: int,
    *,
    quarantine_dir: Path,
    profiles_dir: Path,
    default_profile: str,
) -> tuple[InstancePreview, str]:
    """The engine's pictures of a HELD entry's original, and the profile version used."""
    entry = session.get(QuarantineEntry, entry_id)
    if entry is None:
        raise RejectError(f"no quarantine entry {entry_id}", code="not_found")
    if entry.status is not QuarantineStatus.HELD:
        raise RejectError(f"quarantine entry {entry_id} holds no original", code="conflict")
    job = session.get_one(Job, entry.job_id)
    profile, version = baseline_of(
        session, profile_name_of(session, job, default_profile), profiles_dir
    )
    if profile is None or version is None:
        raise RejectError("the source's profile cannot be loaded", code="conflict")
    data = _read_original(quarantine_dir / entry.stored_name)
    engine = Deidentifier(profile, key_from_bytes(secrets.token_bytes(32)))
    return preview_instance(engine, data, f"quarantine entry {entry_id}"), version


def _read_original(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise RejectError("the original is missing", code="conflict") from exc
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_ORIGINAL_BYTES + 1)
    if len(data) > MAX_ORIGINAL_BYTES:
        raise RejectError("the original is too large to preview", code="too_large")
    return data
