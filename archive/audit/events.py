"""Former home of the whole audit trail, now split into `codes`, `records`, `chain`,
`query` and `export`. Only `unit.py` still imports from here; new code imports
`from archive import audit` (or the module that owns the name)."""

from archive.audit.chain import append
from archive.audit.codes import Outcome
from archive.audit.records import AuditRecord

__all__ = ["AuditRecord", "Outcome", "append"]
