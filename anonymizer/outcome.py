"""The values the de-identification core hands to the edges (archive, catalog, CLI).

Everything here is already de-identified: pseudonyms, new UIDs, shifted dates, cleaned
text. The edges may store and print these freely.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PseudonymKey:
    """The secret behind every pseudonym. Only `key_id` is ever recorded."""

    secret: bytes
    key_id: str


@dataclass(frozen=True)
class InstanceFacts:
    """Catalog facts about one de-identified instance (no PHI)."""

    patient_pseudonym: str
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    profile_name: str
    profile_version: str
    key_id: str
    modality: str | None = None
    study_date: str | None = None
    study_description: str | None = None
    series_description: str | None = None
    series_number: int | None = None
    instance_number: int | None = None
    body_part: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    patient_sex: str | None = None
    patient_age: str | None = None
    patient_birth_year_band: str | None = None
    region: str | None = None
    pixel_actions: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Outcome:
    """A de-identified instance: the Part 10 bytes to archive and what to catalog."""

    data: bytes
    facts: InstanceFacts
