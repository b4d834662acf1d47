"""The shapes of the API's requests and answers, so /docs documents every one of them.

Field names and order follow the catalog functions' rows (archive.catalog.search, read,
governance): the CLI and scripts read the same keys, so a change here is a contract change.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

# --- requests -------------------------------------------------------------------------------


class SourceIn(BaseModel):
    ae_title: str = Field(min_length=1, max_length=16)
    address: str = Field(description="IP address or network (CIDR) the PACS connects from")
    profile: str | None = None
    site: str | None = None
    region: str | None = None
    cert_sha256: str | None = Field(
        default=None,
        max_length=128,
        description="SHA-256 of the client certificate it must present on the DICOM TLS port",
    )
    cert_cn: str | None = Field(
        default=None,
        max_length=64,
        description="subject common name its client certificate must carry (DICOM TLS port)",
    )


class TokenIn(BaseModel):
    user: str = Field(max_length=64, description="the user who will hold the token")
    expires: str | None = Field(
        default=None, max_length=8, description="lifetime such as 90d or 12h (default 90d)"
    )
    # Optional, and only ever the user's own role: a token carries its user's role.
    role: Literal["auditor", "steward", "admin"] | None = None
    label: str | None = Field(default=None, max_length=64, pattern=r"^[\w .@-]*$")


class UserIn(BaseModel):
    name: str = Field(max_length=64)
    role: Literal["auditor", "steward", "admin"]


class UserRoleIn(BaseModel):
    role: Literal["auditor", "steward", "admin"]


# --- common ---------------------------------------------------------------------------------


class ErrorOut(BaseModel):
    """Every refusal and failure: a message free of patient data."""

    error: str


class Health(BaseModel):
    status: str
    jobs: dict[str, int] = Field(description="job counts by status")
    broker: str | None = Field(
        default=None,
        description="up or down: whether this API reaches the broker the receivers publish "
        "to (checked at most every few seconds); absent when not configured",
    )


# --- catalog --------------------------------------------------------------------------------


class StudySummary(BaseModel):
    study_uid: str
    patient_pseudonym: str
    patient_sex: str | None
    patient_birth_year_band: str | None
    patient_age: str | None
    study_date: str | None = Field(description="the shifted study date, YYYYMMDD")
    description: str | None
    region: str | None
    modalities: list[str]
    body_parts: list[str]
    series: int
    instances: int
    status: str
    profile: str | None
    profile_version: str | None
    profile_versions: list[str]
    key_id: str | None
    first_instance_at: str | None
    completed_at: str | None


class StudyPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[StudySummary]


class InstanceRow(BaseModel):
    sop_uid: str
    sop_class_uid: str | None
    transfer_syntax_uid: str | None
    instance_number: int | None
    size_bytes: int | None
    sha256: str | None
    profile: str | None
    profile_version: str | None
    key_id: str | None
    pixel_actions: list[str]
    archived_at: str | None


class SeriesDetail(BaseModel):
    series_uid: str
    modality: str | None
    series_number: int | None
    description: str | None
    body_part: str | None
    instances: list[InstanceRow]


class StudyJob(BaseModel):
    job_id: int
    sop_uid: str | None
    source_kind: str | None
    calling_ae: str | None
    status: str
    attempts: int
    duplicate: bool
    received_at: str | None
    finished_at: str | None


class AuditEventOut(BaseModel):
    seq: int
    occurred_at: str
    event_id: str
    event: str
    event_type: str | None
    action: str
    outcome: int
    actor: str
    actor_role: str | None
    client_address: str | None
    object_type: str | None
    object_id: str | None
    detail: str = Field(description="canonical JSON of the event's detail")
    hash: str


class StudyDetail(StudySummary):
    series_list: list[SeriesDetail]
    jobs: list[StudyJob]
    audit: list[AuditEventOut]


class RegionCount(BaseModel):
    region: str | None
    studies: int
    instances: int


class ModalityCount(BaseModel):
    modality: str | None
    studies: int
    series: int
    instances: int


class MonthCount(BaseModel):
    month: str | None = Field(description="month of receipt, YYYY-MM")
    studies: int
    instances: int


class VersionCount(BaseModel):
    profile: str | None
    profile_version: str | None
    instances: int


class ReasonRate(BaseModel):
    reason: str
    count: int
    rate: float


class QuarantineRates(BaseModel):
    finished_jobs: int
    quarantined: int
    rate: float
    by_reason: list[ReasonRate]


class Statistics(BaseModel):
    by_region: list[RegionCount]
    by_modality: list[ModalityCount]
    by_month: list[MonthCount]
    by_profile_version: list[VersionCount]
    quarantine: QuarantineRates


# --- quarantine -----------------------------------------------------------------------------


class QuarantineRow(BaseModel):
    id: int
    job_id: int
    reason: str
    message: str
    status: str
    size_bytes: int | None
    calling_ae: str | None
    received_at: str | None
    quarantined_at: str | None


class QuarantinePage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[QuarantineRow]


class QuarantineDetail(BaseModel):
    id: int
    job_id: int
    reason: str
    message: str
    status: str
    size_bytes: int | None
    source_kind: str | None
    calling_ae: str | None
    attempts: int
    received_at: str | None
    quarantined_at: str | None


class RetryOut(BaseModel):
    entry_id: int
    job_id: int
    queued: bool = Field(description="handed to the queue now; otherwise the sweeper sends it")


class PurgeOut(BaseModel):
    entry_id: int
    status: Literal["PURGED"]


class ReleaseOut(BaseModel):
    entry_id: int
    status: Literal["RELEASED"]
    released_as: str = Field(description="the file's name in the release folder")


# --- audit ----------------------------------------------------------------------------------


class AuditPage(BaseModel):
    limit: int
    items: list[AuditEventOut]
    # Ask for `before_seq=<this>` to get the next (older) page; null on the last page.
    next_before_seq: int | None


class VerifyProblem(BaseModel):
    seq: int | None
    row_id: int | None
    reason: str
    kind: str


class VerifyOut(BaseModel):
    status: Literal["intact", "truncated", "broken", "anchor_missing", "unreadable"]
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    last_seq: int
    anchor_file: str | None
    anchor_seq: int | None
    anchor_hash: str | None
    jobs: int | None
    problems: list[VerifyProblem]
    notes: list[str]
    # False when the verification itself could not be recorded (the head row is gone).
    recorded: bool = True


# --- profiles -------------------------------------------------------------------------------


class ProfileVersionOut(BaseModel):
    id: int
    name: str
    version: str
    status: str
    proposed_by: str
    proposed_at: str | None
    approved_by: list[str]
    activated_by: str | None
    activated_at: str | None


class DiffEntry(BaseModel):
    path: str
    old: Any = None
    new: Any = None


class ProfileVersionDetail(ProfileVersionOut):
    yaml: str
    diff_against_active: list[DiffEntry]


class ProposalOut(ProfileVersionOut):
    created: bool
    against: str | None
    diff: list[DiffEntry]


class ExplainRow(BaseModel):
    tag: str
    vr: str | None
    keyword: str
    action: str | None
    option: str | None
    before: str | None
    after: str | None


class PixelStepOut(BaseModel):
    """What the pixel step does to a sample, from its header and the engine's decisions."""

    step: Literal["none", "not_examined", "device_rules", "ocr", "quarantine"]
    reason: str
    details: list[str]


class DryRunResult(BaseModel):
    """`reason` and `message` for a quarantined sample, `pixel_actions` for an archived one.
    `before` values in `explain` are masked unless the profile keeps them and they cannot
    identify anyone (the same masking as `amana profile explain`)."""

    file: str
    explain: list[ExplainRow]
    pixel_step: PixelStepOut
    result: Literal["archived", "quarantined"]
    reason: str | None = None
    message: str | None = None
    pixel_actions: list[str] | None = None
    preview_png: str | None = Field(
        default=None,
        description="base64 PNG: the first examined frame as it would be archived, masked "
        "areas outlined (never the original pixels)",
    )
    preview_name: str | None = Field(default=None, description="what the picture shows")


class DryRunOut(BaseModel):
    version: str
    name: str
    results: list[DryRunResult]


# --- sources and tokens ---------------------------------------------------------------------


class SourceOut(BaseModel):
    ae_title: str
    address: str
    profile: str | None
    site: str | None
    region: str | None
    enabled: bool
    cert_sha256: str | None = None
    cert_cn: str | None = None
    created_at: str | None


class TokenCreated(BaseModel):
    token_id: str
    user: str
    role: str
    expires_at: str
    token: str = Field(description="the secret, shown in this answer only")


class TokenOut(BaseModel):
    token_id: str
    user: str
    role: str
    label: str | None
    created_by: str | None
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None
    revoked: bool
    expired: bool


class UserOut(BaseModel):
    id: int
    name: str
    role: str
    created_by: str
    created_at: str | None
    disabled: bool
    tokens: list[str]
    live_tokens: int
    last_used_at: str | None
