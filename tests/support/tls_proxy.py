"""A TLS terminator in front of a plain HTTP server, as nginx or a load balancer stands in
front of an archive: TLS on its own port, bytes passed through to the server unchanged.
(Debian's Orthanc 1.10 resets HTTPS connections made with OpenSSL 3, so the tests put
Orthanc behind this rather than use its own HTTPS.)"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from pathlib import Path

from tests.support.services import free_port


class TlsProxy:
    def __init__(self, cert: Path, key: Path, upstream_port: int) -> None:
        self.port = free_port()
        self.upstream_port = upstream_port
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert, key)
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            secure = self._context.wrap_socket(client, server_side=True)
        except (ssl.SSLError, OSError):
            client.close()  # a client that did not trust us: nothing passes
            return
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        threading.Thread(target=_pipe, args=(upstream, secure), daemon=True).start()
        _pipe(secure, upstream)

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
