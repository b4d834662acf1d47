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

# 90 random bits (a uuid4 has 122) in 18 characters, so that the longest name (a 78 GB
# file, a source id in the billions, a 16-character AE title) fits jobs.spool_name (64).
_RANDOM_BYTES = 12
_RANDOM_CHARS = 18
MAX_NAME = 64
_NAME = re.compile(r"^([a-z2-7]{18})_([0-9a-z]{1,7})_([0-9a-z]{0,6})_([a-z2-7]{0,26})\.dcm$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class ReceivedName:
    size: int
    calling_ae: str | None
    source_id: int | None


def _b36(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = _DIGITS[digit] + digits
        if not number:
            return digits


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _unb32(text: str) -> bytes:
    return base64.b32decode(text.upper() + "=" * (-len(text) % 8))


def received_name(size: int, calling_ae: str | None, source_id: int | None) -> str:
    """A fresh spool name for an instance of `size` bytes received from `calling_ae`
    (registered as `source_id`, when it is)."""
    ae = (calling_ae or "").encode("ascii", "replace")[:16]
    random_part = _b32(os.urandom(_RANDOM_BYTES))[:_RANDOM_CHARS]
    source = "" if source_id is None else _b36(source_id)
    name = f"{random_part}_{_b36(size)}_{source}_{_b32(ae)}.dcm"
    if len(name) > MAX_NAME:  # a 78 GB instance, or two billion registered sources
        raise ValueError("spool name too long")
    return name


def parse_received(name: str) -> ReceivedName | None:
    """What `received_name` put in `name`; None for a name the receiver did not make."""
    match = _NAME.match(name)
    if match is None:
        return None
    try:
        ae = _unb32(match.group(4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None
    source = match.group(3)
    return ReceivedName(int(match.group(2), 36), ae or None, int(source, 36) if source else None)
