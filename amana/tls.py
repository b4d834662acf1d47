"""The TLS settings turned into server contexts (ingest/tls.py builds and checks them).

Each serving entry point asks for its context before it opens a port, so a missing file,
a key that does not match its certificate or an unreadable CA stops it at once with one
line naming the variable (`TlsConfigError`), rather than at the first hospital's handshake.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from amana.listeners import bind_listener, open_port
from amana.settings import Settings
from ingest.scp import AssociationPolicy, SharedSocketServer, StoreHandler, start_receiver
from ingest.spool import Spool
from ingest.tls import TlsConfigError, TlsFiles, server_context

log = logging.getLogger(__name__)

__all__ = [
    "TlsConfigError",
    "api_tls_context",
    "check_tls_settings",
    "dicom_tls_context",
    "open_tls_port",
    "prepare_tls",
    "serve_tls",
    "uvicorn_tls_options",
]


def dicom_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The DICOM TLS port's context, or None when AMANA_DICOM_TLS_PORT is unset."""
    if settings.dicom_tls_port is None:
        return None
    return server_context(TlsFiles(settings.tls_cert, settings.tls_key, settings.tls_ca))


@dataclass
class TlsPort:
    """The DICOM TLS port of one receiver process: its context, and the listening socket
    when this process owns the port (a sibling binds its own once it can serve)."""

    context: ssl.SSLContext
    owned: socket.socket | None


def prepare_tls(settings: Settings, *, sibling: bool) -> TlsPort | None:
    """The context, checked, and for the owner the port, opened (None: no TLS port here).

    Siblings share the TLS port as they share the plain one, through SO_REUSEPORT on the
    configured port number; a port of 0 (any free port, for tests) cannot be shared, so
    the owner alone serves it."""
    context = dicom_tls_context(settings)
    if context is None or (sibling and not settings.dicom_tls_port):
        return None
    return TlsPort(context, None if sibling else open_tls_port(settings))


def serve_tls(
    settings: Settings,
    tls: TlsPort,
    spool: Spool,
    handler: StoreHandler,
    policy: AssociationPolicy,
) -> SharedSocketServer:
    """Serve the TLS port with the same handler and policy as the plain one."""
    assert settings.dicom_tls_port is not None
    listener = tls.owned or bind_listener(settings.dicom_host, settings.dicom_tls_port, shared=True)
    port = listener.getsockname()[1]
    server = start_receiver(
        host=settings.dicom_host,
        port=port,
        ae_title=settings.ae_title,
        spool=spool,
        handler=handler,
        policy=policy,
        listen_fd=listener.fileno(),
        ssl_context=tls.context,
    )
    log.info(
        "receiver listening with TLS on %s:%d (client certificates %s)",
        settings.dicom_host,
        port,
        "required" if settings.tls_ca is not None else "not requested",
    )
    return server


def open_tls_port(settings: Settings) -> socket.socket:
    """The owner's TLS listening socket, shared with the siblings when it can be."""
    assert settings.dicom_tls_port is not None
    processes = settings.receiver_processes if settings.dicom_tls_port else 1
    try:
        return open_port(settings.dicom_host, settings.dicom_tls_port, processes)
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
