"""The DICOM audit vocabulary (PS3.15 A.5.3, PS3.16 CID 400-403): event ids, event types,
actions, outcomes.

Code values and meanings come from pydicom's copy of the DCM coding scheme rather than being
typed here, so a typo cannot put a code in the chain that no DICOM audit repository knows.
The enum values are the bare code values: they are what existing rows store and what their
hashes cover, so they must never change.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

# Every DCM concept an enum member below was built from, by code value. Event ids (1101xx),
# event types (11012x-11013x) and object id types (11018x) do not share values.
_DCM: dict[str, Code] = {}


def _dcm(keyword: str) -> str:
    code = getattr(codes.DCM, keyword)
    _DCM[code.value] = code
    return str(code.value)


def dcm_code(value: str) -> Code | None:
    """The pydicom concept behind one of the codes of this module, None for anything else."""
    return _DCM.get(value)


class _DcmCoded(StrEnum):
    """Members whose value is a DCM code value, with pydicom's Code and meaning beside it."""

    @property
    def code(self) -> Code:
        return _DCM[self.value]

    @property
    def meaning(self) -> str:
        return str(self.code.meaning)


class EventId(_DcmCoded):
    """PS3.15 A.5.3 audit events (DCM codes, CID 400)."""

    APPLICATION_ACTIVITY = _dcm("ApplicationActivity")
    AUDIT_LOG_USED = _dcm("AuditLogUsed")
    BEGIN_TRANSFERRING = _dcm("BeginTransferringDICOMInstances")
    INSTANCES_ACCESSED = _dcm("DICOMInstancesAccessed")
    INSTANCES_TRANSFERRED = _dcm("DICOMInstancesTransferred")
    STUDY_DELETED = _dcm("DICOMStudyDeleted")
    EXPORT = _dcm("Export")
    IMPORT = _dcm("Import")
    NETWORK_ENTRY = _dcm("NetworkEntry")
    QUERY = _dcm("Query")
    SECURITY_ALERT = _dcm("SecurityAlert")
    USER_AUTHENTICATION = _dcm("UserAuthentication")


class EventType(_DcmCoded):
    """Event type codes that qualify some events (CID 401, 402, 403)."""

    APPLICATION_START = _dcm("ApplicationStart")
    APPLICATION_STOP = _dcm("ApplicationStop")
    LOGIN = _dcm("Login")
    LOGOUT = _dcm("Logout")
    NODE_AUTHENTICATION = _dcm("NodeAuthentication")
    NETWORK_CONFIGURATION = _dcm("NetworkConfiguration")
    SECURITY_CONFIGURATION = _dcm("SecurityConfiguration")
    SOFTWARE_CONFIGURATION = _dcm("SoftwareConfiguration")
    USE_OF_RESTRICTED_FUNCTION = _dcm("UseOfRestrictedFunction")
    SECURITY_ROLES_CHANGED = _dcm("SecurityRolesChanged")
    USER_SECURITY_ATTRIBUTES_CHANGED = _dcm("UserSecurityAttributesChanged")


# Readers of stored rows look names up by the code text they hold.
EVENT_NAMES: dict[str, str] = {member.value: member.meaning for member in EventId}
EVENT_TYPE_NAMES: dict[str, str] = {member.value: member.meaning for member in EventType}

# object_type -> ParticipantObjectIDTypeCode (CID 404) for the objects that have one.
OBJECT_ID_TYPES: dict[str, Code] = {
    "study": _DCM[_dcm("StudyInstanceUID")],
    "sop_class": _DCM[_dcm("SOPClassUID")],
    "node": _DCM[_dcm("NodeID")],
}


class Action(StrEnum):
    """Event Action Code."""

    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"


class Outcome(IntEnum):
    """Event Outcome Indicator."""

    SUCCESS = 0
    MINOR_FAILURE = 4
    SERIOUS_FAILURE = 8
    MAJOR_FAILURE = 12


def event_code(name_or_code: str) -> str:
    """Accept a code (110112), a member name (QUERY) or the standard name (Query); anything
    else is returned as given, so a filter on it matches nothing rather than failing."""
    if name_or_code in EVENT_NAMES:
        return name_or_code
    wanted = name_or_code.replace("_", " ").casefold()
    for member in EventId:
        names = (member.meaning, member.name.replace("_", " "))
        if any(name.casefold() == wanted for name in names):
            return member.value
    return name_or_code
