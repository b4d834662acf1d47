"""Real PostgreSQL and Redis for the tests: the machine's own when they run, throwaway
instances started here when they do not. Never a skip."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(host, port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listening on {host}:{port}")
        time.sleep(0.1)


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL server binaries not found ({name}); run `make deps`")
    return found[-1]


def _as_postgres_user() -> list[str]:
    # initdb refuses to run as root.
    if os.geteuid() == 0:
        pwd.getpwnam("postgres")
        return ["runuser", "-u", "postgres", "--"]
    return []


class ThrowawayPostgres:
    """A private PostgreSQL cluster that can be stopped and started again (chaos tests)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="amana-pg-"))
        self.prefix = _as_postgres_user()
        if self.prefix:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        subprocess.run(
            [
                *self.prefix,
                _pg_bin("initdb"),
                "-D",
                str(self.dir / "data"),
                "-U",
                "postgres",
                "--auth=trust",
            ],
            check=True,
            capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.prefix, _pg_bin("pg_ctl"), "-D", str(self.dir / "data"), *args],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self._ctl(
            "-w",
            "-l",
            str(self.dir / "log"),
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1",
            "start",
        )

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class ThrowawayRedis:
    """A private Redis keeping nothing on disk, so a restart is a restart with data wiped."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found; run `make deps-test`")
        self.binary = binary
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_port("127.0.0.1", self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a server URL (no database part) for a reachable PostgreSQL."""
    if port_open("127.0.0.1", 5432):
        yield "postgresql+psycopg://postgres@127.0.0.1:5432"
        return
    server = ThrowawayPostgres()
    server.start()
    try:
        yield server.url
    finally:
        server.destroy()


@contextmanager
def redis_server() -> Iterator[str]:
    if port_open("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379"
        return
    server = ThrowawayRedis()
    server.start()
    try:
        yield server.url.rsplit("/", 1)[0]
    finally:
        server.stop()


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    import psycopg

    name = f"amana_t_{os.urandom(6).hex()}"
    dsn = server_url.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server_url}/{name}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
