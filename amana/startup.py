"""Start-up checks: a bad setting stops a command before anything starts, with one line
naming the `AMANA_*` variable and what is wrong with it.

A misconfiguration found later costs more: a receiver that accepts studies no worker can
process, a supervisor restarting a child that can never start. Messages name variables and
kinds of problems, never values: a URL may carry a password.
"""

from __future__ import annotations

import logging
import math
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from pydantic import ValidationError

from amana.settings import Settings

ENV_PREFIX = "AMANA_"
EXIT_MISCONFIGURED = 2

# AE titles are at most 16 characters of the default repertoire, without backslash.
_AE_TITLE_MAX = 16
# Settings that must be strictly positive numbers (a zero interval would spin, a zero
# limit would refuse everything).
_POSITIVE = (
    "profile_refresh_s",
    "worker_concurrency",
    "sweep_interval_s",
    "stale_after_s",
    "max_instance_mb",
    "job_time_limit_s",
    "job_memory_limit_mb",
)
_NOT_NEGATIVE = ("study_stable_after_s", "spool_min_free_mb")
# A node name goes into a queue name and a catalog column: plain characters, bounded.
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_OWN_PACKAGES = frozenset({"amana", "ingest", "archive", "anonymizer"})


class Misconfigured(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{variable(field)}: {problem}")
        self.field = field


def variable(field: str) -> str:
    return ENV_PREFIX + field.upper()


def fail(problem: Misconfigured) -> typer.Exit:
    typer.echo(f"amana: {problem}", err=True)
    return typer.Exit(EXIT_MISCONFIGURED)


def load() -> Settings:
    """The settings, or one line per bad variable and exit: pydantic's own error is a
    traceback that names the field, not the variable an operator sets."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            field = str(error["loc"][0]) if error["loc"] else "settings"
            typer.echo(f"amana: {variable(field)}: {error['msg']}", err=True)
        raise typer.Exit(EXIT_MISCONFIGURED) from None


@contextmanager
def setting(field: str, problem: str) -> Iterator[None]:
    """Turn a failure of the block into one line about `field` (the error's class name is
    kept: its text may quote a URL or a path's content)."""
    try:
        yield
    except (typer.Exit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        detail = str(exc) if _own(exc) else type(exc).__name__
        raise fail(Misconfigured(field, f"{problem} ({detail})")) from exc


def _own(exc: BaseException) -> bool:
    # Amana's own errors are written without PHI or secrets (anonymizer/errors.py); a
    # library's may quote a URL with its password.
    return isinstance(exc, SystemExit) or type(exc).__module__.split(".")[0] in _OWN_PACKAGES


def check_values(settings: Settings) -> None:
    """What pydantic's types cannot say: ranges, names, URLs."""
    try:
        _check_values(settings)
    except Misconfigured as problem:
        raise fail(problem) from None


def _check_values(settings: Settings) -> None:
    for field in ("dicom_port", "api_port"):
        if not 0 <= getattr(settings, field) <= 65535:
            raise Misconfigured(field, "must be a TCP port number (0-65535)")
    for field in _POSITIVE:
        value = getattr(settings, field)
        if not (math.isfinite(value) and value > 0):
            raise Misconfigured(field, "must be greater than 0")
    for field in _NOT_NEGATIVE:
        value = getattr(settings, field)
        if not (math.isfinite(value) and value >= 0):
            raise Misconfigured(field, "must be 0 or more")
    title = settings.ae_title
    if not title.strip() or len(title) > _AE_TITLE_MAX or not title.isascii() or "\\" in title:
        raise Misconfigured("ae_title", "must be 1 to 16 ASCII characters, no backslash")
    if not _NODE_NAME.match(settings.node):
        raise Misconfigured(
            "node",
            "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    if not isinstance(logging.getLevelName(settings.log_level.upper()), int):
        raise Misconfigured("log_level", "must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    if not settings.profiles_dir.is_dir():
        raise Misconfigured("profiles_dir", "is not a folder")
    _check_database_url(settings.db_url)
    _check_broker_url(settings)
    _check_archive(settings)


def _check_archive(settings: Settings) -> None:
    """The archive URL names a store Amana has, its credentials are one kind, and a file
    URL and AMANA_ARCHIVE_DIR agree. Connects to nothing: an archive that is down at
    start-up only makes jobs wait."""
    from archive.stores.factory import file_root, open_store

    url = settings.archive_store_url
    try:
        open_store(url)
        root = file_root(url) if url.startswith("file:") else None
    except ValueError as exc:
        raise Misconfigured("archive_url", str(exc)) from None
    if root is not None and root.resolve() != settings.archive_path.resolve():
        raise Misconfigured("archive_url", "names another folder than AMANA_ARCHIVE_DIR")
    if settings.archive_token and settings.archive_user:
        raise Misconfigured("archive_token", "set a token or a user and password, not both")
    if settings.archive_password and not settings.archive_user:
        raise Misconfigured("archive_password", "is set without AMANA_ARCHIVE_USER")
    if settings.archive_ca is not None and not settings.archive_ca.is_file():
        raise Misconfigured("archive_ca", "is not a readable file")


def _check_database_url(url: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        problem = f"not a usable database URL ({type(exc).__name__})"
        raise Misconfigured("database_url", problem) from None


def _check_broker_url(settings: Settings) -> None:
    from kombu import Connection

    from amana.celery_app import broker_url

    try:
        # Resolves the transport and imports its client library; connects to nothing.
        Connection(broker_url(settings)).transport  # noqa: B018
    except Exception as exc:
        problem = f"not a usable broker URL ({type(exc).__name__})"
        raise Misconfigured("broker_url", problem) from None


def check_ports(settings: Settings, *, dicom: bool, api: bool) -> None:
    """The ports this command will listen on are free now (a busy one would otherwise be
    found by a child process, restarted for ever)."""
    wanted = []
    if dicom:
        wanted.append(("dicom_port", settings.dicom_host, settings.dicom_port))
        if settings.dicom_tls_port:  # 0 (any free port) cannot be busy
            wanted.append(("dicom_tls_port", settings.dicom_host, settings.dicom_tls_port))
    if api:
        wanted.append(("api_port", settings.api_host, settings.api_port))
    for field, host, port in wanted:
        try:
            _try_bind(host, port)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise fail(Misconfigured(field, f"cannot listen on {host}:{port}: {reason}")) from None


def _try_bind(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As the listeners do: a port in TIME_WAIT is free for them, so it is free here.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1)


def check_key(settings: Settings, *, create: bool) -> None:
    """The pseudonymization key is readable, long enough and private (`amana run` creates
    it on first start; a worker only reads it)."""
    from amana.keys import ensure_key, load_key

    with setting("key_file", "unusable pseudonymization key"):
        if create:
            ensure_key(settings.key_path)
        else:
            load_key(settings.key_path)


def check_profile(settings: Settings) -> None:
    """The default profile loads as a worker would load it: the catalog's active version of
    that name, or its file in AMANA_PROFILES_DIR. Needs the catalog at its latest schema."""
    from archive.catalog.db import make_engine, make_sessionmaker
    from archive.governance.watcher import ActiveProfileWatcher

    engine = make_engine(settings.db_url)
    try:
        with setting("profile", "the profile cannot be loaded"):
            ActiveProfileWatcher(
                make_sessionmaker(engine), settings.profiles_dir, settings.profile
            ).current()
    finally:
        engine.dispose()


def prepare_dirs(settings: Settings) -> None:
    """Create the folders, naming the variable of the one that cannot be."""
    folders = (
        ("home", settings.home, 0o777),
        ("spool_dir", settings.spool_path, 0o777),
        ("archive_dir", settings.archive_path, 0o777),
        ("quarantine_dir", settings.quarantine_path, 0o700),
    )
    for field, path, mode in folders:
        with setting(field, "cannot create this folder"):
            path.mkdir(parents=True, exist_ok=True, mode=mode)
