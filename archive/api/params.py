"""Integer path and query parameters, bounded where the database's integers end.

A number past 2**63-1 cannot be bound to a BIGINT (PostgreSQL) or an INTEGER (SQLite):
unbounded, `/quarantine/99999999999999999999` reached the driver and answered 500. Bounded
here, it answers 422 before any query, and any id in range that names nothing answers 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

# The largest value a BIGINT (and SQLite's INTEGER) holds.
MAX_DB_INT = 2**63 - 1

RowId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="a row id")]
Offset = Annotated[int, Query(ge=0, le=MAX_DB_INT)]
