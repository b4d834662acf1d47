"""Real PostgreSQL and Redis for the tests, never a skip.

By default the suite starts its own throwaway servers on free ports in a temporary folder
and stops them when it ends, so it never touches (or flushes) a database someone else
uses. With `AMANA_TEST_USE_LOCAL_SERVICES=1` it uses the machine's own instead:
PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and Redis on 127.0.0.1:6379, where it
creates and drops its own databases and flushes Redis databases 1-15.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

USE_LOCAL_ENV = "AMANA_TEST_USE_LOCAL_SERVICES"
LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"
LOCAL_REDIS = "redis://127.0.0.1:6379"
# PostgreSQL refuses to run as root; as root the throwaway cluster runs as this user
# (Debian's postgresql package creates it), or as FALLBACK_USER created on demand.
POSTGRES_USER = "postgres"
FALLBACK_USER = "amana-test-pg"


def use_local_services() -> bool:
    return os.environ.get(USE_LOCAL_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


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


def _version_key(path: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/9.6 must sort below /usr/lib/postgresql/16.
    return tuple(int(n) for n in re.findall(r"\d+", path))


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version_key)
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path is None:
        raise RuntimeError(f"PostgreSQL server binaries not found ({name}); run `make deps-test`")
    return on_path


def _server_user() -> str | None:
    """The unprivileged user the cluster runs as when we are root, created if missing."""
    if os.geteuid() != 0:
        return None
    for name in (POSTGRES_USER, FALLBACK_USER):
        with suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            FALLBACK_USER,
        ],
        check=True,
        capture_output=True,
    )
    return FALLBACK_USER


class ThrowawayPostgres:
    """A private PostgreSQL cluster in a temporary folder, on a free port, that can be
    stopped and started again (the chaos run and the receiver's outage test do)."""

    def __init__(self) -> None:
        self.user = _server_user()
        self.dir = Path(tempfile.mkdtemp(prefix="amana-pg-", dir=self._parent()))
        if self.user is not None:
            shutil.chown(self.dir, self.user, self.user)
        self.port = free_port()
        self._run(
            _pg_bin("initdb"),
            "-D",
            str(self.dir / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",  # a throwaway cluster: no need to wait for the disk
        )

    def _parent(self) -> str | None:
        """Where the cluster's folder goes: the usual temporary folder, unless the server's
        user could not reach it (a TMPDIR inside root's home), then /tmp."""
        if self.user is None:
            return None
        parent = Path(tempfile.gettempdir()).resolve()
        reachable = all(os.stat(p).st_mode & 0o001 for p in (parent, *parent.parents))
        return None if reachable else "/tmp"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def _run(self, *command: str) -> None:
        as_user: dict[str, Any] = {}
        if self.user is not None:
            as_user = {"user": self.user, "group": self.user, "extra_groups": []}
        try:
            subprocess.run(
                command, check=True, capture_output=True, text=True, cwd=self.dir, **as_user
            )
        except subprocess.CalledProcessError as exc:
            log = self.dir / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{Path(command[0]).name} failed: {exc.stderr or exc.stdout}\n{tail}"
            ) from exc

    def _ctl(self, *args: str) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.dir / "data"), *args)

    def start(self) -> None:
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.dir}",
                "-c listen_addresses=127.0.0.1",
                # Several Amana processes and a pool per test: the default 100 is tight.
                "-c max_connections=200",
                # Nothing here must survive a power cut; the tests stop PostgreSQL cleanly.
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            ]
        )
        self._ctl("-w", "-t", "60", "-l", str(self.dir / "log"), "-o", options, "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with suppress(RuntimeError):
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
        self.dir = Path(tempfile.mkdtemp(prefix="amana-redis-"))
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
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_port("127.0.0.1", self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _require_local(name: str, host: str, port: int) -> None:
    if not port_open(host, port):
        raise RuntimeError(
            f"{USE_LOCAL_ENV} is set but no {name} answers on {host}:{port}; start it or "
            f"unset {USE_LOCAL_ENV} to let the tests start their own"
        )


@contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server URL (no database part): a throwaway cluster, stopped and removed
    on exit, or the machine's own when `AMANA_TEST_USE_LOCAL_SERVICES` says so."""
    if use_local_services():
        _require_local("PostgreSQL", "127.0.0.1", 5432)
        yield LOCAL_POSTGRES
        return
    server = ThrowawayPostgres()
    try:
        server.start()
        yield server.url
    finally:
        server.destroy()


@contextmanager
def redis_server() -> Iterator[str]:
    """A Redis server URL (no database part), throwaway unless `AMANA_TEST_USE_LOCAL_SERVICES`
    says to use the machine's own."""
    if use_local_services():
        _require_local("Redis", "127.0.0.1", 6379)
        yield LOCAL_REDIS
        return
    server = ThrowawayRedis()
    try:
        server.start()
        yield server.url.rsplit("/", 1)[0]
    finally:
        server.destroy()


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on `server_url`, dropped on exit."""
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
