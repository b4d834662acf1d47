"""The audit trail: hash-chained events in the DICOM audit vocabulary (PS3.15 A.5).

Where things are:

- `codes`: event ids, event types, actions, outcomes (DCM codes taken from pydicom);
- `records`: `AuditRecord`, what a caller asks to record, and the pipeline's own events;
- `chain`: the hash, `append`/`record` onto the chain;
- `anchor`: the head written outside the database after each commit that appended;
- `verify`: the chain, its head, the anchor and the job count checked, as a report;
- `query`: filters, `search_page` (keyset pages by sequence number), streaming reads;
- `export`: CSV, RFC 5424 syslog and DICOM AuditMessage XML, streamed;
- `unit`: one audited unit of work (a change and its event in one transaction).

Callers use `from archive import audit` and the names below.
"""

from archive.audit.anchor import Anchor, attach_anchor, read_anchor
from archive.audit.chain import (
    GENESIS_HASH,
    AuditUnavailable,
    append,
    event_hash,
    record,
)
from archive.audit.codes import (
    EVENT_NAMES,
    EVENT_TYPE_NAMES,
    Action,
    EventId,
    EventType,
    Outcome,
    event_code,
)
from archive.audit.export import (
    EXPORT_FORMATS,
    HEAD_ROW_EVENT,
    MEDIA_TYPES,
    AuditExport,
    ExportFormat,
    audit_message,
    audit_message_xml,
    head_at,
    head_line,
    iter_export,
    to_syslog,
)
from archive.audit.query import (
    AUDIT_COLUMNS,
    AuditFilter,
    AuditPage,
    count,
    event_row,
    iter_event_pages,
    iter_events,
    latest_seq,
    search,
    search_page,
)
from archive.audit.records import (
    AuditRecord,
    application_activity,
    association_refused,
    instances_archived,
    instances_received,
    job_quarantined,
    quarantine_action,
    study_completed,
    study_reopened,
    unacknowledged_instances_removed,
)
from archive.audit.verify import Problem, Status, VerifyReport, verify

__all__ = [
    "AUDIT_COLUMNS",
    "Anchor",
    "Status",
    "attach_anchor",
    "read_anchor",
    "EVENT_NAMES",
    "EVENT_TYPE_NAMES",
    "EXPORT_FORMATS",
    "GENESIS_HASH",
    "HEAD_ROW_EVENT",
    "MEDIA_TYPES",
    "Action",
    "AuditExport",
    "AuditFilter",
    "AuditPage",
    "AuditRecord",
    "AuditUnavailable",
    "EventId",
    "EventType",
    "ExportFormat",
    "Outcome",
    "Problem",
    "VerifyReport",
    "append",
    "application_activity",
    "association_refused",
    "audit_message",
    "audit_message_xml",
    "count",
    "event_code",
    "event_hash",
    "event_row",
    "instances_archived",
    "instances_received",
    "iter_event_pages",
    "iter_events",
    "head_at",
    "head_line",
    "iter_export",
    "job_quarantined",
    "latest_seq",
    "quarantine_action",
    "record",
    "search",
    "search_page",
    "study_completed",
    "study_reopened",
    "to_syslog",
    "unacknowledged_instances_removed",
    "verify",
]
