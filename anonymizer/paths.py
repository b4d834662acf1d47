"""Archive paths, built from new UIDs only (never a name, an id or an original UID)."""

from __future__ import annotations

import re
from pathlib import Path

from anonymizer.outcome import InstanceFacts

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def archive_relpath(facts: InstanceFacts) -> Path:
    """`<study_uid>/<series_uid>/<sop_uid>.dcm`; refuses anything that is not a UID."""
    return relpath_for(facts.study_uid, facts.series_uid, facts.sop_instance_uid)


def relpath_for(study_uid: str, series_uid: str, sop_instance_uid: str) -> Path:
    """The same path from the three UIDs (the self-check scans it before facts exist)."""
    parts = (study_uid, series_uid, sop_instance_uid)
    for part in parts:
        if not _UID.match(part) or len(part) > 64:
            raise ValueError("archive paths are built from UIDs only")
    return Path(parts[0]) / parts[1] / f"{parts[2]}.dcm"
