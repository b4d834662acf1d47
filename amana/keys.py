"""The pseudonymization key file: read at each entry point, created only by `amana run`."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from anonymizer.engine import key_from_bytes
from anonymizer.outcome import PseudonymKey

KEY_BYTES = 32


def load_key(path: Path) -> PseudonymKey:
    try:
        secret = path.read_bytes()
    except FileNotFoundError as exc:
        raise SystemExit(f"pseudonymization key file not found: {path}") from exc
    if len(secret) < KEY_BYTES:
        raise SystemExit(f"pseudonymization key file is too short (< {KEY_BYTES} bytes): {path}")
    if path.stat().st_mode & 0o077:
        raise SystemExit(f"pseudonymization key file must not be readable by others: {path}")
    return key_from_bytes(secret)


def ensure_key(path: Path) -> PseudonymKey:
    """Load the key, creating it (mode 0600 in a 0700 folder) on first start."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
    return load_key(path)
