"""Taking the trail away: CSV rows, RFC 5424 syslog lines, DICOM AuditMessage XML.

Exports stream: events are read in keyset pages and each page is turned into text before
the next is read, so a million-event export holds one page of events and one page of text,
never the whole log.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.audit.chain import GENESIS_HASH
from archive.audit.codes import (
    EVENT_NAMES,
    EVENT_TYPE_NAMES,
    OBJECT_ID_TYPES,
    EventId,
    Outcome,
)
from archive.audit.query import (
    AUDIT_COLUMNS,
    STREAM_PAGE,
    AuditFilter,
    event_row,
    iter_event_pages,
)
from archive.catalog.csv_rows import to_csv
from archive.catalog.models_governance import AuditEvent

ExportFormat = Literal["csv", "syslog"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "syslog")
MEDIA_TYPES: dict[ExportFormat, str] = {
    "csv": "text/csv; charset=utf-8",
    "syslog": "text/plain; charset=utf-8",
}

# Facility 13 is "log audit". The SD-ID carries the IANA documentation enterprise number;
# a deployment with its own Private Enterprise Number replaces it.
SYSLOG_FACILITY = 13
SD_ID = "amana@32473"
# The MSGID PS3.15 A.5.1 gives to DICOM audit messages carried over syslog.
DICOM_MSGID = "DICOM+RFC3881"

# Characters XML 1.0 cannot carry at all, even escaped: ElementTree would write them as they
# are and the message would no longer parse, so they are replaced.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _severity(event: AuditEvent) -> int:
    if event.outcome >= Outcome.MAJOR_FAILURE:
        return 2
    if event.outcome >= Outcome.SERIOUS_FAILURE:
        return 3
    if event.outcome >= Outcome.MINOR_FAILURE:
        return 4
    return 5 if event.event_id == EventId.SECURITY_ALERT else 6


# Control characters (line breaks above all) would split one event over several syslog
# lines; RFC 5424 has no escape for them, so they are replaced.
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _sd_escape(value: str) -> str:
    value = _CONTROL.sub("\ufffd", value)
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _coded(parent: ET.Element, tag: str, code: str, scheme: str, meaning: str) -> None:
    ET.SubElement(
        parent,
        tag,
        {
            "csd-code": _xml_text(code),
            "codeSystemName": _xml_text(scheme),
            "originalText": _xml_text(meaning),
        },
    )


def audit_message(event: AuditEvent, source_id: str) -> ET.Element:
    """The event as a DICOM AuditMessage element (PS3.15 A.5.1 schema)."""
    root = ET.Element("AuditMessage")
    ident = ET.SubElement(
        root,
        "EventIdentification",
        {
            "EventActionCode": _xml_text(event.action),
            "EventDateTime": _xml_text(event.occurred_at),
            "EventOutcomeIndicator": str(event.outcome),
        },
    )
    _coded(ident, "EventID", event.event_id, "DCM", EVENT_NAMES.get(event.event_id, ""))
    if event.event_type:
        _coded(
            ident,
            "EventTypeCode",
            event.event_type,
            "DCM",
            EVENT_TYPE_NAMES.get(event.event_type, ""),
        )
    participant_attrs = {"UserID": _xml_text(event.actor), "UserIsRequestor": "true"}
    if event.client_address:
        participant_attrs["NetworkAccessPointID"] = _xml_text(event.client_address)
        # 2: an IP address (PS3.15 A.5.2, Network Access Point Type Code).
        participant_attrs["NetworkAccessPointTypeCode"] = "2"
    participant = ET.SubElement(root, "ActiveParticipant", participant_attrs)
    if event.actor_role:
        _coded(participant, "RoleIDCode", event.actor_role, "amana-role", event.actor_role)
    ET.SubElement(root, "AuditSourceIdentification", {"AuditSourceID": _xml_text(source_id)})
    if event.object_id:
        kind = event.object_type or "object"
        id_type = OBJECT_ID_TYPES.get(kind)
        obj = ET.SubElement(
            root,
            "ParticipantObjectIdentification",
            # 2: a system object (a study, a job, a token), not a person.
            {"ParticipantObjectID": _xml_text(event.object_id), "ParticipantObjectTypeCode": "2"},
        )
        if id_type is not None:
            _coded(
                obj,
                "ParticipantObjectIDTypeCode",
                id_type.value,
                id_type.scheme_designator,
                id_type.meaning,
            )
        else:
            _coded(obj, "ParticipantObjectIDTypeCode", kind, "amana", kind)
    return root


def audit_message_xml(event: AuditEvent, source_id: str) -> str:
    """The event as a one-line DICOM AuditMessage: ElementTree escapes line breaks inside
    attributes, and no element has text, so the message never spans lines."""
    return ET.tostring(audit_message(event, source_id), encoding="unicode")


def _syslog_host(hostname: str) -> str:
    return (hostname or "-").replace(" ", "_")[:255]


def to_syslog(event: AuditEvent, *, hostname: str = "-", app_name: str = "amana") -> str:
    """One RFC 5424 line: header, structured data with the chain fields, XML message."""
    pri = SYSLOG_FACILITY * 8 + _severity(event)
    params = {
        "seq": str(event.seq),
        "event": event.event_id,
        "action": event.action,
        "outcome": str(event.outcome),
        "actor": event.actor,
        "hash": event.hash,
        "prev": event.prev_hash,
    }
    sd = "[" + SD_ID + "".join(f' {k}="{_sd_escape(v)}"' for k, v in params.items()) + "]"
    host = _syslog_host(hostname)
    message = audit_message_xml(event, f"{app_name}@{host}")
    return f"<{pri}>1 {event.occurred_at} {host} {app_name} - {DICOM_MSGID} {sd} {message}"


def _csv_page(events: list[AuditEvent], *, header: bool) -> str:
    # One CSV writer for the catalog and the trail, so the spreadsheet-formula guard is the
    # same everywhere; its header line (column names, no line breaks) is cut after page one.
    text = to_csv([event_row(e) for e in events], AUDIT_COLUMNS)
    return text if header else text.split("\n", 1)[1]


class AuditExport:
    """An export as an iterable of text chunks (one per keyset page) to write as they come.

    `rows` counts the events written so far, for the audit record of the export itself.
    """

    def __init__(
        self,
        session: Session,
        flt: AuditFilter,
        fmt: ExportFormat,
        hostname: str = "-",
        *,
        page_size: int = STREAM_PAGE,
        head: tuple[int, str] | None = None,
    ) -> None:
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"unknown audit export format {fmt!r}")
        self.session = session
        self.flt = flt
        self.fmt: ExportFormat = fmt
        self.hostname = hostname
        self.page_size = page_size
        self.head = head
        self.rows = 0

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.fmt]

    def __iter__(self) -> Iterator[str]:
        pages = iter_event_pages(self.session, self.flt, page_size=self.page_size)
        first = True
        for events in pages:
            if self.fmt == "csv":
                chunk = _csv_page(events, header=first)
            else:
                chunk = "".join(to_syslog(e, hostname=self.hostname) + "\n" for e in events)
            first = False
            self.rows += len(events)
            yield chunk
        if first and self.fmt == "csv":
            yield to_csv([], AUDIT_COLUMNS)  # an empty export still names its columns
        if self.head is not None:
            yield head_line(self.fmt, *self.head, hostname=self.hostname)


# The event name of the closing row of a CSV export (no event has it).
HEAD_ROW_EVENT = "Audit trail head"
HEAD_MSGID = "AMANA-HEAD"


def head_line(fmt: ExportFormat, seq: int, digest: str, *, hostname: str = "-") -> str:
    """The closing line of an export: the trail's head when it began (sequence number and
    hash), so every export kept elsewhere is an anchor `amana audit verify --anchor` checks."""
    if fmt == "csv":
        row: dict[str, object] = dict.fromkeys(AUDIT_COLUMNS)
        row.update(seq=seq, event=HEAD_ROW_EVENT, hash=digest)
        return to_csv([row], AUDIT_COLUMNS).split("\n", 1)[1]
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    sd = f'[amana-head@32473 seq="{seq}" hash="{digest}"]'
    pri = SYSLOG_FACILITY * 8 + 6
    return f"<{pri}>1 {when} {_syslog_host(hostname)} amana - {HEAD_MSGID} {sd}\n"


def head_at(session: Session, seq: int) -> tuple[int, str]:
    """(seq, hash) of the event at `seq`: the head an export pinned to `seq` closes with."""
    digest = session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == seq))
    return seq, digest or GENESIS_HASH


def iter_export(
    session: Session,
    flt: AuditFilter,
    fmt: ExportFormat,
    hostname: str = "-",
    *,
    page_size: int = STREAM_PAGE,
    head: tuple[int, str] | None = None,
) -> AuditExport:
    """Every event matching `flt`, in chain order, as CSV or RFC 5424 lines, streamed; with
    `head`, closed by the head line (`head_line`)."""
    return AuditExport(session, flt, fmt, hostname, page_size=page_size, head=head)
