"""The one settings object. Built at each entry point from `AMANA_*` and passed down."""

from __future__ import annotations

import ipaddress
import socket
from importlib import resources
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The repository's profiles/ folder is installed as this package (pyproject.toml), so a
# wheel carries the profiles and an editable install reads the working tree.
PROFILES_PACKAGE = "amana_profiles"


def shipped_profiles_dir() -> Path:
    """The profiles shipped with the installed distribution (AMANA_PROFILES_DIR overrides).

    Found through the installed package rather than relative to this file, which in an
    installed wheel sits in site-packages with no profiles/ beside it."""
    try:
        root = resources.files(PROFILES_PACKAGE)
    except ModuleNotFoundError as exc:
        raise RuntimeError(
            f"the shipped profiles (package {PROFILES_PACKAGE}) are not installed: "
            "reinstall amana (pip install -e .) or set AMANA_PROFILES_DIR"
        ) from exc
    if not isinstance(root, Path):
        # Profiles are read and globbed as files; a zipped install cannot offer them.
        raise RuntimeError(
            f"the shipped profiles are not on the file system ({root}); "
            "install amana unzipped or set AMANA_PROFILES_DIR"
        )
    return root


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AMANA_", extra="ignore")

    home: Path = Path("./var")
    # The ingest node this process belongs to: its jobs, its queue (`amana.jobs.<node>`), its
    # spool. Every process of one machine must say the same; two machines never the same.
    node: str = Field(default_factory=socket.gethostname)
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite catalog under home"
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker URL; default: durable SQLite queue under home"
    )
    archive_dir: Path | None = None
    # Where de-identified instances go: file:///folder (default: archive_dir) or
    # dicomweb+http(s)://host/path, a DICOMweb archive (archive/stores/). Its credentials
    # are settings of their own, never part of the URL: a bearer token, or user and
    # password; archive_ca adds a private CA (verification is never turned off).
    archive_url: str | None = None
    archive_token: SecretStr | None = None
    archive_user: str | None = None
    archive_password: SecretStr | None = None
    archive_ca: Path | None = None
    spool_dir: Path | None = None
    quarantine_dir: Path | None = None
    # Where `POST /datasets/{name}/export` writes (default: under home): an HTTP caller names
    # a folder inside it, never a path of its own choosing.
    export_dir: Path | None = None
    # Where the console's "release" hands held originals out of Amana (files of mode 0600
    # in a folder of mode 0700), to go back to their hospital or be handled by hand.
    release_dir: Path | None = None
    dicom_host: str = "0.0.0.0"
    dicom_port: int = 11112
    # DICOM over TLS (PS3.15 Annex B; 2762 by convention), served beside the plain port by
    # the same receiver processes. Unset: no TLS listener. See docs/tls.md.
    dicom_tls_port: int | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # CA of the hospitals' client certificates: when set, the TLS port requires one.
    tls_ca: Path | None = None
    # HTTPS for the API when both are set; its own pair, since browsers and scripts check
    # the API's host name against a certificate the DICOM PKI need not issue.
    api_tls_cert: Path | None = None
    api_tls_key: Path | None = None
    ae_title: str = "AMANA"
    # Accept associations from this machine without a registered source: `amana run` turns
    # it on so a first try works; split deployments register every PACS.
    accept_loopback: bool = False
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Proxies whose X-Forwarded-For the API believes (addresses or CIDRs, comma-separated);
    # from any other peer the header is ignored, so a client cannot choose its audited address.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Failed authentications one client address may make per minute before it gets 429.
    auth_failures_per_minute: int = Field(default=10, ge=1)
    # The audit head written outside the database after every commit that appended events
    # (default: under home); every process that appends must see the same file.
    audit_anchor_file: Path | None = None
    profile: str = "ma-national"
    profiles_dir: Path = Field(default_factory=shipped_profiles_dir)
    # How often a worker looks for a newly activated profile version.
    profile_refresh_s: float = 30.0
    key_file: Path | None = None
    worker_concurrency: int = 2
    # Receiver processes accepting on the one DICOM port: pynetdicom spends most of an
    # instance's time in one Python thread, so parallel associations scale with processes.
    receiver_processes: int = Field(default=2, ge=1, le=64)
    sweep_interval_s: float = 30.0
    stale_after_s: float = 300.0
    study_stable_after_s: float = 60.0
    spool_min_free_mb: int = 512
    # Larger instances are refused at the door (0xA700) rather than filling the spool.
    max_instance_mb: int = 2048
    # Parse each received header (never pixels) and refuse what cannot be read (0xC000).
    validate_on_receive: bool = True
    # Per-job limits for worker processes: a decoder bomb fails its own job, not the worker.
    job_time_limit_s: int = 600
    job_memory_limit_mb: int = 6144
    log_level: str = "INFO"

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for item in value:
                # Refused at start-up: a typo here would silently trust nobody or everybody.
                ipaddress.ip_network(str(item), strict=False)
        return value

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        home = self.home.resolve()
        self.home = home
        if self.archive_dir is None and self.archive_url and self.archive_url.startswith("file:"):
            # Read once more (and refused if malformed) by the start-up checks.
            self.archive_dir = Path(unquote(urlsplit(self.archive_url).path))
        if self.archive_dir is None:
            self.archive_dir = home / "archive"
        if self.archive_url is None:
            self.archive_url = self.archive_dir.resolve().as_uri()
        if self.spool_dir is None:
            self.spool_dir = home / "spool"
        if self.quarantine_dir is None:
            self.quarantine_dir = home / "quarantine"
        if self.export_dir is None:
            self.export_dir = home / "exports"
        if self.release_dir is None:
            self.release_dir = home / "released"
        if self.audit_anchor_file is None:
            self.audit_anchor_file = home / "audit-anchor.log"
        if self.database_url is None:
            self.database_url = f"sqlite:///{home / 'catalog.db'}"
        if self.broker_url is None:
            self.broker_url = f"sqla+sqlite:///{home / 'queue.db'}"
        return self

    # Typed accessors so callers need not re-check the derived Optionals.
    @property
    def archive_path(self) -> Path:
        assert self.archive_dir is not None
        return self.archive_dir

    @property
    def export_path(self) -> Path:
        assert self.export_dir is not None
        return self.export_dir

    @property
    def archive_store_url(self) -> str:
        assert self.archive_url is not None
        return self.archive_url

    @property
    def spool_path(self) -> Path:
        assert self.spool_dir is not None
        return self.spool_dir

    @property
    def quarantine_path(self) -> Path:
        assert self.quarantine_dir is not None
        return self.quarantine_dir

    @property
    def release_path(self) -> Path:
        assert self.release_dir is not None
        return self.release_dir

    @property
    def audit_anchor_path(self) -> Path:
        assert self.audit_anchor_file is not None
        return self.audit_anchor_file

    @property
    def db_url(self) -> str:
        assert self.database_url is not None
        return self.database_url

    @property
    def broker(self) -> str:
        assert self.broker_url is not None
        return self.broker_url

    @property
    def key_path(self) -> Path:
        return (
            self.key_file if self.key_file is not None else self.home / "secrets" / "pseudonym.key"
        )


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
