"""The identifying values of one instance, gathered before anything is changed.

They drive `clean` (free text loses them) and the self-check (the output must not contain
them). Outside the floor, only values the profile removes or replaces count: a value the
profile keeps on purpose (a retained device model, say) cannot be a leak. Floor attributes
(profiles/floor.yaml) count whatever the profile says: no profile may keep them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import PersonName

from anonymizer.rules import CompiledProfile, Op
from anonymizer.textnorm import UNSPACED, name_components, normalize

# Attributes whose whole value identifies someone or something local (PN handled by VR).
IDENTITY_KEYWORDS: dict[int, str] = {
    0x00100020: "PatientID",
    0x00101000: "OtherPatientIDs",
    0x00100021: "IssuerOfPatientID",
    0x00080050: "AccessionNumber",
    0x00200010: "StudyID",
    0x00381010: "AdmissionID",
    0x00101090: "MedicalRecordLocator",
    0x00402016: "PlacerOrderNumberImagingServiceRequest",
    0x00402017: "FillerOrderNumberImagingServiceRequest",
    0x00401001: "RequestedProcedureID",
    0x00400009: "ScheduledProcedureStepID",
    0x00400253: "PerformedProcedureStepID",
    0x00102154: "PatientTelephoneNumbers",
    0x00101040: "PatientAddress",
    0x00401102: "PersonAddress",
    0x00401103: "PersonTelephoneNumbers",
    0x00080092: "ReferringPhysicianAddress",
    0x00080094: "ReferringPhysicianTelephoneNumbers",
    0x00080080: "InstitutionName",
    0x00080081: "InstitutionAddress",
    0x00081040: "InstitutionalDepartmentName",
    0x00081010: "StationName",
    0x00181000: "DeviceSerialNumber",
    0x00100030: "PatientBirthDate",
    0x00080020: "StudyDate",
    0x00101080: "MilitaryRank",
    0x00101081: "BranchOfService",
    0x00100050: "PatientInsurancePlanCodeSequence",
    0x00102150: "CountryOfResidence",
    0x00120040: "ClinicalTrialSubjectID",
    0x00120042: "ClinicalTrialSubjectReadingID",
}
# Attributes whose value is a category, never a leak even when removed.
_NOT_IDENTIFYING = {0x00102150, 0x00100050}
_DATE_KEYWORDS = {"PatientBirthDate", "StudyDate"}
# Values Amana itself writes (dummies, markers): finding them in an output that is being
# de-identified again is not a leak.
SYNTHETIC_VALUES = frozenset({"ANONYMIZED", "AMANA", "UNKNOWN", "***", "19000101"})
_DIGITS = re.compile(r"^\d+$")


@dataclass
class IdentifyingValues:
    names: set[str] = field(default_factory=set)  # name components and whole names
    identifiers: set[str] = field(default_factory=set)  # ids, addresses, phones, stations
    dates: set[str] = field(default_factory=set)  # YYYYMMDD
    uids: set[str] = field(default_factory=set)  # originals of remapped UIDs
    phones: set[str] = field(default_factory=set)  # digits only

    def drop_synthetic(self, extra: set[str]) -> None:
        synthetic = {v.casefold() for v in SYNTHETIC_VALUES | extra}
        for bucket in (self.names, self.identifiers, self.dates):
            bucket -= {v for v in bucket if v.casefold() in synthetic}

    def all_values(self) -> list[str]:
        return sorted(self.names | self.identifiers | self.dates | self.uids)


def _values(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bytes):
        return [value.decode("latin-1")]
    if isinstance(value, str | PersonName):
        return [str(value)]
    try:
        return [str(v) for v in value]  # type: ignore[attr-defined]
    except TypeError:
        return [str(value)]


def _ascii_values(raw: object) -> list[str] | None:
    """The values of a still-encoded element whose bytes are plain ASCII (no decoding by
    pydicom needed: ASCII reads the same in every DICOM character set but ISO 2022, whose
    escapes are excluded); None for anything else."""
    if not isinstance(raw, RawDataElement):
        return None
    value = raw.value
    if not isinstance(value, bytes) or not value.isascii() or b"\x1b" in value:
        return None
    return [part.strip("\x00 ") for part in value.decode("ascii").split("\\")]


def collect(
    ds: Dataset,
    compiled: CompiledProfile,
    found: IdentifyingValues,
    floor: Mapping[int, str] | None = None,
) -> None:
    """Walk every element at every depth (private included) and record identifying values.

    `floor` maps floor tags to their category (name, date, phone, identifier); their values
    are recorded even when the profile keeps them.
    """
    floor = floor or {}
    for element_tag, raw in list(ds._dict.items()):
        tag = int(element_tag)  # plain int: cheaper dict lookups than BaseTag
        vr = raw.VR if raw.VR not in (None, "UN") else _dictionary_vr(tag)
        if vr == "SQ":
            for item in ds[tag].value or ():
                collect(item, compiled, found, floor)
            continue
        category = floor.get(tag)
        is_named = tag in IDENTITY_KEYWORDS
        if vr != "PN" and not is_named and category is None:
            continue
        rule = compiled.rule_for(tag) if not (tag >> 16) & 1 else None
        if category is None and rule is not None and rule.op == Op.KEEP:
            continue  # kept on purpose by the profile
        values = _ascii_values(raw)
        if values is None:
            try:
                values = _values(ds[tag].value)
            except Exception:  # noqa: BLE001 - undecodable: nothing to learn from it
                continue
        if vr == "PN" or category == "name":
            for value in values:
                _collect_name(str(value), found)
            continue
        if tag in _NOT_IDENTIFYING:
            continue
        keyword = IDENTITY_KEYWORDS.get(tag, "")
        for value in values:
            text = normalize(str(value)).strip()
            if not text:
                continue
            if keyword in _DATE_KEYWORDS or category == "date":
                if len(text) >= 8 and text[:8].isdigit():
                    found.dates.add(text[:8])
                continue
            found.identifiers.add(text)
            if category == "phone" or "Telephone" in keyword:
                digits = "".join(c for c in text if c.isdigit())
                if len(digits) >= 8:
                    found.phones.add(digits)
            if keyword.endswith("Address"):
                # the street line identifies; a town name alone is shared by a million people
                found.identifiers.update(
                    part.strip()
                    for part in re.split(r"[,;^\n]", text)
                    if any(c.isdigit() for c in part) or len(part.split()) >= 3
                )


def _collect_name(value: str, found: IdentifyingValues) -> None:
    """Every part of a person name, as received and normalized (Arabic marks and letter
    variants folded), plus each whole character-set group (alphabetic, ideographic,
    phonetic) as it is written, so that a group whose parts are short still counts."""
    for text in {value, normalize(value)}:
        found.names.update(c for c in name_components(text) if len(c) >= 2)
        whole = text.replace("^", " ").replace("=", " ").strip()
        if len(whole) >= 2:
            found.names.add(" ".join(whole.split()))
        for group in text.split("="):
            group = group.strip("^ ")
            if len(group) >= 3:
                found.names.add(group)
            if UNSPACED.search(group):
                joined = "".join(group.replace("^", " ").split())
                if len(joined) >= 3:
                    found.names.add(joined)


def _dictionary_vr(tag: int) -> str:
    """The VR of an implicit or UN-encoded element (UN stays UN for unknown tags)."""
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def is_meaningful(value: str, kind: str) -> bool:
    """Values long enough that finding them in output is evidence, not coincidence."""
    if kind == "uid":
        return len(value) >= 10
    if kind == "date":
        return len(value) == 8
    if _DIGITS.match(value):
        return len(value) >= 5
    return len(value) >= 3
