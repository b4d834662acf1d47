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
from contextlib import contextmanager
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


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a server URL (no database part) for a reachable PostgreSQL."""
    if port_open("127.0.0.1", 5432):
        yield "postgresql+psycopg://postgres@127.0.0.1:5432"
        return
    datadir = Path(tempfile.mkdtemp(prefix="amana-pg-"))
    prefix = _as_postgres_user()
    if prefix:
        shutil.chown(datadir, "postgres", "postgres")
    port = free_port()
    subprocess.run(
        [*prefix, _pg_bin("initdb"), "-D", str(datadir / "data"), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *prefix,
            _pg_bin("pg_ctl"),
            "-D",
            str(datadir / "data"),
            "-w",
            "-l",
            str(datadir / "log"),
            "-o",
            f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*prefix, _pg_bin("pg_ctl"), "-D", str(datadir / "data"), "-m", "fast", "stop"],
            capture_output=True,
        )
        shutil.rmtree(datadir, ignore_errors=True)


@contextmanager
def redis_server() -> Iterator[str]:
    if port_open("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379"
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found; run `make deps`")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_port("127.0.0.1", port)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


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
