"""The TLS settings turned into server contexts (ingest/tls.py builds and checks them).

Each serving entry point asks for its context before it opens a port, so a missing file,
a key that does not match its certificate or an unreadable CA stops it at once with one
line naming the variable (`TlsConfigError`), rather than at the first hospital's handshake.
"""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Any

from amana.listeners import open_port
from amana.settings import Settings
from ingest.tls import TlsConfigError, TlsFiles, server_context

__all__ = [
    "TlsConfigError",
    "api_tls_context",
    "check_tls_settings",
    "dicom_tls_context",
    "open_tls_port",
    "uvicorn_tls_options",
]


def dicom_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The DICOM TLS port's context, or None when AMANA_DICOM_TLS_PORT is unset."""
    if settings.dicom_tls_port is None:
        return None
    return server_context(TlsFiles(settings.tls_cert, settings.tls_key, settings.tls_ca))


def open_tls_port(settings: Settings) -> socket.socket:
    """The TLS port's listening socket, for the owning receiver process alone."""
    assert settings.dicom_tls_port is not None
    try:
        return open_port(settings.dicom_host, settings.dicom_tls_port, 1)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise TlsConfigError(
            "AMANA_DICOM_TLS_PORT",
            f"{settings.dicom_host}:{settings.dicom_tls_port} is already in use",
        ) from exc


def api_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The API's HTTPS context, or None (plain HTTP) when neither file is set."""
    if settings.api_tls_cert is None and settings.api_tls_key is None:
        return None
    ctx = server_context(
        TlsFiles(
            settings.api_tls_cert,
            settings.api_tls_key,
            cert_var="AMANA_API_TLS_CERT",
            key_var="AMANA_API_TLS_KEY",
        )
    )
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def uvicorn_tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.run's keyword arguments for HTTPS with Amana's context (none for HTTP)."""
    ctx = api_tls_context(settings)
    if ctx is None:
        return {}
    return {"ssl_context_factory": lambda _config, _default: ctx}


def check_tls_settings(settings: Settings) -> None:
    """Both contexts, built and thrown away: `amana run` checks before starting children,
    which would otherwise each fail, restart and fail again."""
    dicom_tls_context(settings)
    api_tls_context(settings)
