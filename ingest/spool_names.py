"""Spool names of received instances: the file is the record of its own arrival.

The receiver answers Success once the file is durable in the spool, before its job row
exists (ingest/job_batcher.py writes the rows). Whatever a job row needs that is not in the
file must therefore survive a crash with it: the calling AE title and the registered
source are in the name (neither is PHI), the node is the spool's own, and the size is the
file's. `<random>_<source id>_<AE title>.dcm`, the AE title in base32 so that any AE title
(slashes, spaces) makes a valid, unambiguous file name.

Names of other origins (folder imports: `<hex>.dcm`, committed with their job, and
re-copied when an interrupted import runs again) do not parse, so the recovery scan never
makes a job of them.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass

# 110 random bits: as unguessable and collision-free as a uuid4, in fewer characters, so
# that the longest name (10-digit source id, 16-character AE title) fits jobs.spool_name
# (64 characters).
_RANDOM_BYTES = 14
_RANDOM_CHARS = 22
_NAME = re.compile(r"^([a-z2-7]{22})_([0-9]{0,10})_([a-z2-7]{0,26})\.dcm$")


@dataclass(frozen=True)
class ReceivedName:
    calling_ae: str | None
    source_id: int | None


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _unb32(text: str) -> bytes:
    return base64.b32decode(text.upper() + "=" * (-len(text) % 8))


def received_name(calling_ae: str | None, source_id: int | None) -> str:
    """A fresh spool name for an instance received from `calling_ae` (registered as
    `source_id`, when it is)."""
    ae = (calling_ae or "").encode("ascii", "replace")[:16]
    random_part = _b32(os.urandom(_RANDOM_BYTES))[:_RANDOM_CHARS]
    return f"{random_part}_{'' if source_id is None else source_id}_{_b32(ae)}.dcm"


def parse_received(name: str) -> ReceivedName | None:
    """What `received_name` put in `name`; None for a name the receiver did not make."""
    match = _NAME.match(name)
    if match is None:
        return None
    try:
        ae = _unb32(match.group(3)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None
    source = match.group(2)
    return ReceivedName(ae or None, int(source) if source else None)
