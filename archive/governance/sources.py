"""Registered sources: which PACS (calling AE title, network address) may send to Amana, and
the profile and region their studies get.

A source's profile and region are checked when they are set: a profile must exist (a file in
the profiles folder or a version in the catalog) and a region must be one of the steward-kept
region tables (profiles/regions/*.yaml), so that a typo never reaches an archived study.
"""

from __future__ import annotations

import ipaddress
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.engine import ProfileError, load_profile
from anonymizer.errors import RejectError
from archive.catalog.models import Job, JobStatus
from archive.catalog.models_governance import ProfileVersion, Source
from archive.governance.profile_text import NAME_PATTERN
from archive.work.jobs import utcnow

# PS3.8: up to 16 characters of the default repertoire, no backslash or control characters.
AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")
LABEL = re.compile(r"^[\w .'()/-]{1,64}$")
DISABLED = "source disabled"
# A certificate's SHA-256 as `openssl x509 -fingerprint -sha256` prints it or as bare hex.
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# RFC 5280 ub-common-name is 64; printable characters only, so the value can be logged.
COMMON_NAME = re.compile(r"^[\x20-\x7e]{1,64}$")


@dataclass(frozen=True)
class PeerTls:
    """What an association's transport proved: whether it ran over TLS, and the client
    certificate the TLS port verified (its SHA-256 and subject common names), if any."""

    over_tls: bool = False
    sha256: str | None = None
    common_names: tuple[str, ...] = ()


PLAIN_TCP = PeerTls()


def _fingerprint(value: str | None) -> str | None:
    if value is None or value.strip() == "":
        return None
    hexed = value.strip().replace(":", "").lower()
    if hexed.startswith("sha256="):  # `openssl x509 -fingerprint` output pasted whole
        hexed = hexed.removeprefix("sha256=")
    if not SHA256_HEX.match(hexed):
        raise RejectError(
            "certificate fingerprint must be a SHA-256 (64 hex digits, colons allowed)",
            code="bad_source",
        )
    return hexed


def _common_name(value: str | None) -> str | None:
    if value is None or value.strip() == "":
        return None
    if not COMMON_NAME.match(value.strip()):
        raise RejectError(
            "certificate common name must be 1 to 64 printable characters", code="bad_source"
        )
    return value.strip()


def certificate_refusal(source: Source, peer: PeerTls) -> str | None:
    """Why `peer` does not prove to be `source`, or None. A source bound to a certificate
    (fingerprint, common name, or both) connects only over TLS with that certificate, so
    its AE title and address alone no longer let anyone send in its name."""
    if source.cert_sha256 is None and source.cert_cn is None:
        return None
    if not peer.over_tls:
        return "source bound to a certificate must connect over TLS"
    if peer.sha256 is None:
        return "no client certificate (AMANA_TLS_CA not set?)"
    if source.cert_sha256 is not None and peer.sha256 != source.cert_sha256:
        return "client certificate is not the one registered for this AE title"
    if source.cert_cn is not None and source.cert_cn not in peer.common_names:
        return "client certificate common name is not the one registered for this AE title"
    return None


def _network(address: str) -> str:
    try:
        return str(ipaddress.ip_network(address.strip(), strict=False))
    except ValueError as exc:
        raise RejectError(
            "address must be an IP address or a network such as 10.1.2.0/24", code="bad_source"
        ) from exc


def _label(value: str | None, what: str) -> str | None:
    if value is None or value == "":
        return None
    if not LABEL.match(value):
        raise RejectError(f"{what} has characters that are not allowed", code="bad_source")
    return value


def source_row(src: Source) -> dict[str, Any]:
    return {
        "ae_title": src.ae_title,
        "address": src.address,
        "profile": src.profile_name,
        "site": src.site,
        "region": src.region,
        "enabled": src.enabled,
        "cert_sha256": src.cert_sha256,
        "cert_cn": src.cert_cn,
        "created_at": src.created_at.isoformat() if src.created_at else None,
    }


def registration_detail(src: Source) -> dict[str, Any]:
    """What the audit event of a registration records of the new source, the same whether
    the command line, the API or the console registered it."""
    return {
        "object_id": src.ae_title,
        "address": src.address,
        "profile": src.profile_name,
        "region": src.region,
        "cert_sha256": src.cert_sha256,
        "cert_cn": src.cert_cn,
    }


def known_regions(profiles_dir: Path) -> dict[str, str]:
    """The regions of the steward-kept tables, by their case-folded name."""
    found: dict[str, str] = {}
    for table in sorted((profiles_dir / "regions").glob("*.yaml")):
        try:
            data = yaml.safe_load(table.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # the profile loader reports a broken table with its line
        regions = data.get("regions") if isinstance(data, dict) else None
        if isinstance(regions, dict):
            found.update({str(name).casefold(): str(name) for name in regions})
    return found


def _region(value: str | None, profiles_dir: Path) -> str | None:
    if value is None or value.strip() == "":
        return None
    regions = known_regions(profiles_dir)
    canonical = regions.get(value.strip().casefold())
    if canonical is None:
        raise RejectError(
            "unknown region: it must be one of the region table's regions "
            f"({', '.join(sorted(regions.values())) or 'none defined'})",
            code="bad_source",
        )
    return canonical


def profile_exists(session: Session, name: str, profiles_dir: Path) -> bool:
    """A profile a source may name: a version in the catalog, or a file that loads."""
    if session.scalar(select(ProfileVersion.id).where(ProfileVersion.name == name).limit(1)):
        return True
    if not (profiles_dir / f"{name}.yaml").is_file():
        return False
    try:
        load_profile(name, profiles_dir)
    except ProfileError:
        return False
    return True


def _profile(session: Session, value: str | None, profiles_dir: Path) -> str | None:
    if value is None or value.strip() == "":
        return None
    name = value.strip()
    if not NAME_PATTERN.match(name) or not profile_exists(session, name, profiles_dir):
        # The typed value is configuration, but it may be anything: not echoed.
        raise RejectError(
            "unknown profile: no profile file and no catalog version has that name",
            code="bad_source",
        )
    return name


def add_source(
    session: Session,
    *,
    ae_title: str,
    address: str,
    profile_name: str | None = None,
    site: str | None = None,
    region: str | None = None,
    profiles_dir: Path | None = None,
    cert_sha256: str | None = None,
    cert_cn: str | None = None,
) -> Source:
    """Register a PACS; its profile and region, when given, must exist (`profiles_dir`)."""
    title = ae_title.strip()
    if not AE_TITLE.match(title):
        raise RejectError("AE title must be 1 to 16 printable characters", code="bad_source")
    if (profile_name or region) and profiles_dir is None:
        raise ValueError("a profile or region is checked against the profiles folder")
    source = Source(
        ae_title=title,
        address=_network(address),
        profile_name=_profile(session, profile_name, profiles_dir) if profiles_dir else None,
        site=_label(site, "site"),
        region=_region(region, profiles_dir) if profiles_dir else None,
        enabled=True,
        cert_sha256=_fingerprint(cert_sha256),
        cert_cn=_common_name(cert_cn),
        created_at=utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(source)
    except IntegrityError as exc:
        raise RejectError(f"a source with AE title {title} exists", code="conflict") from exc
    return source


def get_source(session: Session, ae_title: str) -> Source:
    source = session.scalars(select(Source).where(Source.ae_title == ae_title.strip())).first()
    if source is None:
        raise RejectError("no such source", code="not_found")
    return source


def edit_source(
    session: Session,
    ae_title: str,
    profiles_dir: Path,
    *,
    profile_name: str | None = None,
    region: str | None = None,
    address: str | None = None,
    site: str | None = None,
    cert_sha256: str | None = None,
    cert_cn: str | None = None,
) -> tuple[Source, dict[str, Any]]:
    """Change what is given (None: unchanged; an empty text clears a profile, region or site).
    Returns the source and the changes made, as {field: [old, new]} for the audit record.
    Jobs not yet processed get the new profile and region."""
    source = get_source(session, ae_title)
    wanted: dict[str, Any] = {}
    if profile_name is not None:
        wanted["profile_name"] = _profile(session, profile_name, profiles_dir)
    if region is not None:
        wanted["region"] = _region(region, profiles_dir)
    if address is not None:
        wanted["address"] = _network(address)
    if site is not None:
        wanted["site"] = _label(site, "site")
    if cert_sha256 is not None:
        wanted["cert_sha256"] = _fingerprint(cert_sha256)
    if cert_cn is not None:
        wanted["cert_cn"] = _common_name(cert_cn)
    changes: dict[str, Any] = {}
    for field, value in wanted.items():
        old = getattr(source, field)
        if old != value:
            changes[field] = [old, value]
            setattr(source, field, value)
    session.flush()
    return source, changes


def set_enabled(session: Session, ae_title: str, enabled: bool) -> Source:
    """A disabled source is refused at association like an unknown one; its jobs already
    received are still processed under its profile."""
    source = get_source(session, ae_title)
    source.enabled = enabled
    session.flush()
    return source


def remove_source(session: Session, ae_title: str) -> None:
    source = get_source(session, ae_title)
    pending = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.source_id == source.id)
        .where(Job.status.in_([JobStatus.RECEIVED, JobStatus.RUNNING, JobStatus.HELD]))
    )
    if pending:
        # Removed, its waiting instances would fall back to the default profile and region.
        raise RejectError(
            f"source has {pending} instances still being processed: disable it now and "
            "remove it once they are archived",
            code="conflict",
        )
    session.delete(source)
    session.flush()


def list_sources(session: Session) -> list[dict[str, Any]]:
    return [source_row(s) for s in session.scalars(select(Source).order_by(Source.ae_title))]


@dataclass(frozen=True)
class SourceDecision:
    allowed: bool
    reason: str
    source: dict[str, Any] | None = None
    # The row of the registered source, so the receiver can attribute the association's jobs.
    source_id: int | None = None
    # True when the refusal is about us (catalog down), so the PACS should retry later.
    transient: bool = False
    # Refused by the source's certificate binding: an admin's explicit rule, which the
    # loopback waiver of `amana run` does not lift.
    certificate: bool = False


# How long a catalog's "yes" still admits a peer while the catalog is unreachable.
REMEMBER_S = 3600.0
# Peers remembered at most (a bound on memory whatever connects; forgetting only costs
# availability during an outage).
_REMEMBER_MAX = 10_000


def check_source(
    session: Session,
    calling_ae: str | None,
    address: str | None,
    *,
    open_when_empty: bool,
    tls: PeerTls = PLAIN_TCP,
) -> SourceDecision:
    """Whether an association may proceed. `open_when_empty` lets the embedded `amana run`
    accept anyone until a first source is registered; split deployments pass False. `tls`
    is what the transport proved (a source bound to a certificate needs it)."""
    if not session.scalar(select(func.count()).select_from(Source)):
        if open_when_empty:
            return SourceDecision(True, "no sources registered")
        return SourceDecision(False, "no sources registered")
    title = (calling_ae or "").strip()
    source = session.scalars(select(Source).where(Source.ae_title == title)).first()
    if source is None:
        return SourceDecision(False, "unknown calling AE title")
    if not source.enabled:
        return SourceDecision(False, DISABLED)
    try:
        peer = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return SourceDecision(False, "no peer address")
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    if peer not in ipaddress.ip_network(source.address, strict=False):
        return SourceDecision(False, "address not registered for this AE title")
    refusal = certificate_refusal(source, tls)
    if refusal is not None:
        return SourceDecision(False, refusal, certificate=True)
    return SourceDecision(True, "registered", source_row(source), source_id=source.id)


class SourceGate:
    """The receiver's association check: registered sources only, refusals audited.

    Called once per association (not per instance), so it reads the catalog each time and a
    source added or removed takes effect on the next association.

    While the catalog is unreachable, a peer that was let in by the catalog's answer within
    `remember_s` is let in again with that answer (its source, so its jobs keep their
    profile): the receiver no longer needs the catalog to store (the spool is the record),
    so an outage should not stop a PACS that was sending. A peer the catalog never let in,
    or refused last, stays out.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        open_when_empty: bool,
        remember_s: float = REMEMBER_S,
    ) -> None:
        self.sessions = sessions
        self.open_when_empty = open_when_empty
        self.remember_s = remember_s
        self._last: dict[tuple[str | None, str | None, PeerTls], tuple[float, SourceDecision]] = {}
        self._lock = threading.Lock()

    def _remember(
        self, key: tuple[str | None, str | None, PeerTls], decision: SourceDecision
    ) -> SourceDecision:
        with self._lock:
            if len(self._last) >= _REMEMBER_MAX:
                self._last.clear()
            self._last[key] = (time.monotonic(), decision)
        return decision

    def _remembered(self, key: tuple[str | None, str | None, PeerTls]) -> SourceDecision | None:
        with self._lock:
            seen = self._last.get(key)
        if seen is None or time.monotonic() - seen[0] > self.remember_s:
            return None
        return seen[1] if seen[1].allowed else None

    def check(
        self,
        calling_ae: str | None,
        address: str | None,
        *,
        waive_unknown: bool = False,
        tls: PeerTls = PLAIN_TCP,
    ) -> SourceDecision:
        """`waive_unknown` (a loopback peer in the embedded mode) lets an unregistered peer in
        unattributed; a registered source that was disabled, or whose certificate binding
        `tls` does not satisfy, stays refused."""
        from archive import audit

        key = (calling_ae, address, tls)
        try:
            with self.sessions.begin() as session:
                decision = check_source(
                    session,
                    calling_ae,
                    address,
                    open_when_empty=self.open_when_empty,
                    tls=tls,
                )
                if (
                    waive_unknown
                    and not decision.allowed
                    and decision.reason != DISABLED
                    and not decision.certificate
                ):
                    return self._remember(key, SourceDecision(True, "loopback"))
                if not decision.allowed:
                    audit.append(
                        session, audit.association_refused(calling_ae, address, decision.reason)
                    )
        except SQLAlchemyError:
            remembered = self._remembered(key)
            if remembered is not None:
                return remembered
            if waive_unknown:
                return SourceDecision(True, "loopback")
            # Who may send is not known: refuse for now, the PACS tries again later.
            return SourceDecision(False, "catalog unavailable", transient=True)
        return self._remember(key, decision)
