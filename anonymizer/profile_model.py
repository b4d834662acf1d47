"""The profile schema: what a steward may write in a profile YAML file.

One pydantic model family, `extra="forbid"` everywhere, so that a misspelt key is an error
rather than a silently ignored rule. JSON Schema for editors is exported from `Profile`.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from anonymizer.pixels import PixelPolicy

TAG_PATTERN = re.compile(r"^\(([0-9A-Fa-fx]{4}),([0-9A-Fa-fx]{4})\)$")


class Action(StrEnum):
    """PS3.15 action codes, their combinations, and Amana's own actions."""

    D = "D"  # replace with a dummy value valid for the VR
    Z = "Z"  # zero-length (or dummy where the VR forbids empty)
    X = "X"  # remove
    K = "K"  # keep (sequences: keep and apply the rules inside)
    C = "C"  # clean: meaning depends on the option and the VR (see engine)
    U = "U"  # replace UIDs consistently
    XZ = "X/Z"
    XD = "X/D"
    ZD = "Z/D"
    XZD = "X/Z/D"
    XZU = "X/Z/U*"
    PSEUDONYM = "pseudonym"
    SHIFT_DATE = "shift_date"
    GENERALIZE = "generalize"
    CLEAN = "clean"


class Option(StrEnum):
    """The ten PS3.15 options Amana implements (Clean Pixel Data is the pixel section)."""

    RETAIN_SAFE_PRIVATE = "retain_safe_private"
    RETAIN_UIDS = "retain_uids"
    RETAIN_DEVICE_IDENTITY = "retain_device_identity"
    RETAIN_INSTITUTION_IDENTITY = "retain_institution_identity"
    RETAIN_PATIENT_CHARACTERISTICS = "retain_patient_characteristics"
    RETAIN_LONG_FULL_DATES = "retain_long_full_dates"
    RETAIN_LONG_MODIFIED_DATES = "retain_long_modified_dates"
    CLEAN_DESCRIPTORS = "clean_descriptors"
    CLEAN_STRUCTURED_CONTENT = "clean_structured_content"
    CLEAN_GRAPHICS = "clean_graphics"


# Precedence when several selected options name the same attribute: retaining beats
# modifying, which beats cleaning (the standard's options are designed not to conflict).
# Date options come before device/institution options so that a calibration date kept "for
# the device" is still shifted when only modified dates are retained.
OPTION_ORDER: tuple[Option, ...] = (
    Option.RETAIN_UIDS,
    Option.RETAIN_LONG_FULL_DATES,
    Option.RETAIN_LONG_MODIFIED_DATES,
    Option.RETAIN_DEVICE_IDENTITY,
    Option.RETAIN_INSTITUTION_IDENTITY,
    Option.RETAIN_PATIENT_CHARACTERISTICS,
    Option.RETAIN_SAFE_PRIVATE,
    Option.CLEAN_DESCRIPTORS,
    Option.CLEAN_STRUCTURED_CONTENT,
    Option.CLEAN_GRAPHICS,
)

# PS3.16 CID 7050 De-identification Method codes (DCM scheme).
OPTION_CODES: dict[Option, tuple[str, str]] = {
    Option.CLEAN_GRAPHICS: ("113103", "Clean Graphics Option"),
    Option.CLEAN_STRUCTURED_CONTENT: ("113104", "Clean Structured Content Option"),
    Option.CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option"),
    Option.RETAIN_LONG_FULL_DATES: (
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    Option.RETAIN_LONG_MODIFIED_DATES: (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    Option.RETAIN_PATIENT_CHARACTERISTICS: ("113108", "Retain Patient Characteristics Option"),
    Option.RETAIN_DEVICE_IDENTITY: ("113109", "Retain Device Identity Option"),
    Option.RETAIN_UIDS: ("113110", "Retain UIDs Option"),
    Option.RETAIN_SAFE_PRIVATE: ("113111", "Retain Safe Private Option"),
    Option.RETAIN_INSTITUTION_IDENTITY: ("113112", "Retain Institution Identity Option"),
}
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")

OptionAction = Literal["K", "C", "D", "X", "Z", "U"]
GeneralizeMethod = Literal["age", "region"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AttributeRule(_Strict):
    """What one attribute (or a repeating-group pattern such as `(60xx,3000)`) becomes."""

    tag: str = Field(description="(gggg,eeee); x in a digit position matches any hex digit")
    keyword: str | None = Field(default=None, description="DICOM keyword; checked against tag")
    action: Action
    options: dict[Option, OptionAction] = Field(
        default_factory=dict, description="Action when the option is selected (table cells)"
    )
    method: GeneralizeMethod | None = Field(default=None, description="for action generalize")
    note: str | None = None

    @field_validator("tag")
    @classmethod
    def _tag_format(cls, value: str) -> str:
        if not TAG_PATTERN.match(value):
            raise ValueError(f"tag must look like (0010,0010) or (60xx,3000), got {value!r}")
        return value.upper().replace("X", "x")

    @model_validator(mode="after")
    def _method_for_generalize(self) -> AttributeRule:
        if (self.action == Action.GENERALIZE) != (self.method is not None):
            raise ValueError("`method` is required with action generalize and only with it")
        return self


class PrivateRule(_Strict):
    """A private element kept (or cleaned) by creator, group and element byte."""

    creator: str
    group: str | None = Field(default=None, description="odd group, 4 hex digits; any if absent")
    element: str = Field(description="element byte within the block, 2 hex digits, e.g. '10'")
    action: Literal["K", "clean", "X", "U"] = "K"
    note: str | None = None

    @field_validator("group")
    @classmethod
    def _odd_group(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"[0-9A-Fa-f]{4}", value) or int(value, 16) % 2 == 0:
            raise ValueError("group must be 4 hex digits and odd (a private group)")
        return value.upper()

    @field_validator("element")
    @classmethod
    def _element_byte(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9A-Fa-f]{2}", value):
            raise ValueError("element must be the 2 hex digits of the element within its block")
        return value.upper()


class PrivatePolicy(_Strict):
    action: Literal["X"] = "X"
    options: dict[Option, OptionAction] = Field(default_factory=dict)
    keep: tuple[PrivateRule, ...] = ()


class DateShift(_Strict):
    min: int = Field(default=-1095, description="days, inclusive")
    max: int = Field(default=-30, description="days, inclusive")

    @model_validator(mode="after")
    def _ordered(self) -> DateShift:
        if self.min > self.max:
            raise ValueError("date_shift_days: min must not exceed max")
        if self.min <= 0 <= self.max and self.min == self.max:
            raise ValueError("date_shift_days: a zero shift keeps the real dates")
        return self


class Pseudonyms(_Strict):
    linkage: tuple[str, ...] = Field(
        default=("IssuerOfPatientID", "PatientID"),
        description="keywords whose values identify a patient across studies",
    )
    date_shift_days: DateShift = Field(default_factory=DateShift)


class Generalization(_Strict):
    age_max_years: int = Field(default=89, description="older ages become age_max_years + 1")
    region_table: str | None = Field(
        default=None, description="YAML file (relative to the profiles folder): institution→region"
    )


class DatasetPrivacy(_Strict):
    """Re-identification thresholds for dataset exports (archive/datasets) of data this
    profile produced. An export of several profiles' data takes the strictest of each."""

    k_anonymity: int = Field(
        default=5, ge=2, le=1000, description="least number of patients sharing a combination"
    )
    l_diversity: int = Field(
        default=2,
        ge=1,
        le=50,
        description="least number of distinct (sex, age band) values among patients sharing "
        "every other quasi-identifier; 1: no requirement",
    )


class Standard(_Strict):
    document: str
    table: str
    edition: str
    source: str
    licence: str


class Profile(_Strict):
    """A resolved profile (after `extends:`); `version` is the digest of its content."""

    name: str
    description: str = ""
    extends: str | None = None
    standard: Standard | None = None
    options: tuple[Option, ...] = ()
    pseudonyms: Pseudonyms = Field(default_factory=Pseudonyms)
    generalize: Generalization = Field(default_factory=Generalization)
    datasets: DatasetPrivacy = Field(default_factory=DatasetPrivacy)
    private: PrivatePolicy = Field(default_factory=PrivatePolicy)
    table: tuple[AttributeRule, ...] = Field(
        default=(), description="rows of PS3.15 Table E.1-1 (generated, do not edit)"
    )
    attributes: tuple[AttributeRule, ...] = Field(
        default=(), description="house rules and overrides; win over `table` for the same tag"
    )
    regions: dict[str, str] = Field(
        default_factory=dict,
        description="normalized institution name -> region; filled from region_table by the loader",
    )
    pixel: PixelPolicy | None = None
    version: str = Field(default="", description="set by the loader; never written by hand")
    source_file: str = Field(default="", description="set by the loader")


def profile_json_schema() -> dict[str, object]:
    """JSON Schema of what a steward writes (loader-set fields left out)."""
    schema = Profile.model_json_schema()
    properties = schema.get("properties", {})
    for field_name in ("version", "source_file", "regions"):
        properties.pop(field_name, None)
    schema["$id"] = "https://amana.invalid/profiles/schema/profile.schema.json"
    schema["title"] = "Amana de-identification profile"
    return schema
