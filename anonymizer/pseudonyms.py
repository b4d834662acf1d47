"""Keyed pseudonyms: HMAC-SHA256 with one domain per kind of value.

The same key and the same original always give the same pseudonym, so references stay
valid across instances and studies; without the key nothing can be traced back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from anonymizer.outcome import PseudonymKey

_DOMAIN_PREFIX = b"amana/v1/"
UID_ROOT = "2.25."


def key_from_bytes(secret: bytes) -> PseudonymKey:
    """A key and its public id. The id is a domain-separated hash, never the secret."""
    if len(secret) < 16:
        raise ValueError("a pseudonymization key needs at least 16 bytes of secret")
    key_id = hashlib.sha256(b"amana/key-id/v1\x00" + secret).hexdigest()[:16]
    return PseudonymKey(secret=secret, key_id=key_id)


class Pseudonymizer:
    """All derivations from one key. Small caches: study/series UIDs repeat per instance."""

    def __init__(self, key: PseudonymKey) -> None:
        self._secret = key.secret
        self._uid_cache: dict[str, str] = {}

    def digest(self, domain: str, value: str) -> bytes:
        message = _DOMAIN_PREFIX + domain.encode("ascii") + b"\x00" + value.encode("utf-8")
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def token(self, domain: str, value: str, length: int = 16) -> str:
        """Upper-case base32 text, safe in every DICOM string VR."""
        text = base64.b32encode(self.digest(domain, value)).decode("ascii").rstrip("=")
        return text[:length]

    def patient(self, linkage_values: Sequence[str]) -> str:
        return self.token("patient", "\x1f".join(linkage_values), 24)

    def uid(self, original: str) -> str:
        cached = self._uid_cache.get(original)
        if cached is None:
            # 2.25 form (PS3.5 B.2): the integer is the first 128 bits of the HMAC
            number = int.from_bytes(self.digest("uid", original)[:16], "big")
            cached = f"{UID_ROOT}{number}"
            if len(self._uid_cache) > 100_000:
                self._uid_cache.clear()
            self._uid_cache[original] = cached
        return cached

    def date_offset(self, linkage_values: Sequence[str], low: int, high: int) -> int:
        """Days added to every date of one patient, in [low, high], never zero."""
        span = high - low + 1
        number = int.from_bytes(self.digest("date", "\x1f".join(linkage_values))[:8], "big")
        offset = low + number % span
        if offset == 0:
            offset = high if high != 0 else low
        return offset
