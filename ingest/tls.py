"""DICOM over TLS (PS3.15 Annex B, BCP 195 profiles) and HTTPS for the API.

Server contexts are built once at start-up from the certificate files in the settings;
a broken file stops the component with one line naming its variable. On the DICOM TLS
port the handshake runs in the association's own thread, never in the accept loop, so
one client that connects and says nothing cannot hold back everyone else's studies.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archive.governance.sources import PeerTls

log = logging.getLogger(__name__)

# BCP 195 (RFC 9325) for TLS 1.2: forward secrecy (ECDHE) and AEAD ciphers only, so no
# RSA key exchange and no CBC. TLS 1.3 suites are all AEAD and are not filtered by this
# string. dcmtk's `storescu +tls` (profile BCP 195 non-downgrading, its default) offers
# ECDHE-ECDSA/RSA with AES-GCM, which is in this list.
BCP195_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"
HANDSHAKE_TIMEOUT_S = 30.0
# The mixin below has a `socket` attribute, as socketserver servers do.
Socket = socket.socket


class TlsConfigError(Exception):
    """A certificate setting that cannot be used; the text names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class TlsFiles:
    """The files of one TLS endpoint and the variables they came from (for errors)."""

    cert: Path | None
    key: Path | None
    client_ca: Path | None = None
    cert_var: str = "AMANA_TLS_CERT"
    key_var: str = "AMANA_TLS_KEY"
    ca_var: str = "AMANA_TLS_CA"


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A TLS 1.2+ server context with BCP 195 suites; client certificates are required
    and verified against `client_ca` when it is given."""
    cert = _readable(files.cert, files.cert_var)
    key = _readable(files.key, files.key_var)
    _warn_if_exposed(Path(key), files.key_var)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(BCP195_CIPHERS)
    # Renegotiation is a DoS lever and compression leaks plaintext lengths (CRIME).
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    _check_certificate(cert, files.cert_var)
    try:
        # An empty password: an encrypted key fails here instead of prompting on a tty.
        ctx.load_cert_chain(cert, key, password=b"")
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise TlsConfigError(
                files.key_var, f"the key does not match the certificate of {files.cert_var}"
            ) from exc
        raise TlsConfigError(files.key_var, "not a readable unencrypted PEM private key") from exc
    if files.client_ca is not None:
        ca = _readable(files.client_ca, files.ca_var)
        try:
            ctx.load_verify_locations(cafile=str(ca))
        except ssl.SSLError as exc:
            raise TlsConfigError(files.ca_var, "not a PEM file of CA certificates") from exc
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _readable(path: Path | None, variable: str) -> str:
    if path is None:
        raise TlsConfigError(variable, "not set")
    if not path.is_file():
        raise TlsConfigError(variable, f"no such file: {path}")
    try:
        path.read_bytes()
    except OSError as exc:
        raise TlsConfigError(variable, f"cannot read {path}: {exc.strerror}") from exc
    return str(path)


def _warn_if_exposed(key: Path, variable: str) -> None:
    # A warning, not a refusal: container secrets are often mounted 0444 for one user.
    mode = key.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning(
            "%s (%s) is readable by other users (mode %03o): chmod 600", variable, key, mode
        )


def _check_certificate(cert: str, variable: str) -> None:
    # A context of its own: only a certificate (not a key) loads as a CA file, so a key
    # given as the certificate is reported against the right variable.
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cafile=cert)
    except ssl.SSLError as exc:
        raise TlsConfigError(variable, "not a PEM certificate") from exc


def peer_tls(assoc: Any) -> PeerTls:
    """What the association's transport proves: TLS or not, and the client certificate
    (verified by the context) with its SHA-256 fingerprint and subject common names."""
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if not isinstance(sock, ssl.SSLSocket):
        return PeerTls(over_tls=False)
    der = sock.getpeercert(binary_form=True)
    if not der:
        return PeerTls(over_tls=True)
    # Verified against AMANA_TLS_CA (CERT_REQUIRED), so the parsed form is there too.
    subject: Any = (sock.getpeercert() or {}).get("subject", ())
    names = [str(value) for rdn in subject for key, value in rdn if key == "commonName"]
    return PeerTls(over_tls=True, sha256=hashlib.sha256(der).hexdigest(), common_names=tuple(names))


class DeferredHandshakeMixin:
    """For a socketserver whose `ssl_context` wraps accepted sockets: the handshake moves
    from the accept loop (pynetdicom's `get_request`) into the request's thread, with a
    timeout, and a refused handshake is logged with the peer's address and the reason."""

    socket: Socket
    ssl_context: ssl.SSLContext | None

    def get_request(self) -> tuple[Socket, Any]:
        client, address = self.socket.accept()
        assert self.ssl_context is not None
        try:
            wrapped = self.ssl_context.wrap_socket(
                client, server_side=True, do_handshake_on_connect=False
            )
        except OSError:
            client.close()
            raise
        return wrapped, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        assert isinstance(request, ssl.SSLSocket)
        try:
            request.settimeout(HANDSHAKE_TIMEOUT_S)
            request.do_handshake()
            # Blocking again, as pynetdicom expects of the sockets it is given.
            request.settimeout(None)
        except (OSError, ValueError) as exc:
            log.warning("TLS handshake refused from %s: %s", _host(client_address), _reason(exc))
            _close(request)
            return
        super().finish_request(request, client_address)  # type: ignore[misc]


def _host(client_address: Any) -> str:
    if isinstance(client_address, tuple) and client_address:
        return str(client_address[0])
    return "?"


def _reason(exc: BaseException) -> str:
    # OpenSSL's short reason (e.g. TLSV1_ALERT_UNKNOWN_CA, UNSUPPORTED_PROTOCOL): about the
    # connection, never its content.
    reason = getattr(exc, "reason", None)
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        # Why the client's certificate failed: expired, unknown issuer, ...
        return f"{reason} ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError) and reason:
        return str(reason)
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return type(exc).__name__


def _close(sock: Socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
