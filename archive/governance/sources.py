"""Registered sources: which PACS (calling AE title, network address) may send to Amana."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.errors import RejectError
from archive.catalog.models_governance import Source
from archive.work.jobs import utcnow

# PS3.8: up to 16 characters of the default repertoire, no backslash or control characters.
AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")
LABEL = re.compile(r"^[\w .'()/-]{1,64}$")


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
        "created_at": src.created_at.isoformat() if src.created_at else None,
    }


def add_source(
    session: Session,
    *,
    ae_title: str,
    address: str,
    profile_name: str | None = None,
    site: str | None = None,
    region: str | None = None,
) -> Source:
    title = ae_title.strip()
    if not AE_TITLE.match(title):
        raise RejectError("AE title must be 1 to 16 printable characters", code="bad_source")
    source = Source(
        ae_title=title,
        address=_network(address),
        profile_name=_label(profile_name, "profile"),
        site=_label(site, "site"),
        region=_label(region, "region"),
        enabled=True,
        created_at=utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(source)
    except IntegrityError as exc:
        raise RejectError(f"a source with AE title {title} exists", code="conflict") from exc
    return source


def remove_source(session: Session, ae_title: str) -> None:
    source = session.scalars(select(Source).where(Source.ae_title == ae_title.strip())).first()
    if source is None:
        raise RejectError("no such source", code="not_found")
    session.delete(source)
    session.flush()


def list_sources(session: Session) -> list[dict[str, Any]]:
    return [source_row(s) for s in session.scalars(select(Source).order_by(Source.ae_title))]


@dataclass(frozen=True)
class SourceDecision:
    allowed: bool
    reason: str
    source: dict[str, Any] | None = None
    # True when the refusal is about us (catalog down), so the PACS should retry later.
    transient: bool = False


def check_source(
    session: Session, calling_ae: str | None, address: str | None, *, open_when_empty: bool
) -> SourceDecision:
    """Whether an association may proceed. `open_when_empty` lets the embedded `amana run`
    accept anyone until a first source is registered; split deployments pass False."""
    if not session.scalar(select(func.count()).select_from(Source)):
        if open_when_empty:
            return SourceDecision(True, "no sources registered")
        return SourceDecision(False, "no sources registered")
    title = (calling_ae or "").strip()
    source = session.scalars(select(Source).where(Source.ae_title == title)).first()
    if source is None:
        return SourceDecision(False, "unknown calling AE title")
    if not source.enabled:
        return SourceDecision(False, "source disabled")
    try:
        peer = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return SourceDecision(False, "no peer address")
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    if peer not in ipaddress.ip_network(source.address, strict=False):
        return SourceDecision(False, "address not registered for this AE title")
    return SourceDecision(True, "registered", source_row(source))


class SourceGate:
    """The receiver's association check: registered sources only, refusals audited.

    Called once per association (not per instance), so it reads the catalog each time and a
    source added or removed takes effect on the next association.
    """

    def __init__(self, sessions: sessionmaker[Session], *, open_when_empty: bool) -> None:
        self.sessions = sessions
        self.open_when_empty = open_when_empty

    def check(self, calling_ae: str | None, address: str | None) -> SourceDecision:
        from archive import audit

        try:
            with self.sessions.begin() as session:
                decision = check_source(
                    session, calling_ae, address, open_when_empty=self.open_when_empty
                )
                if not decision.allowed:
                    audit.append(
                        session, audit.association_refused(calling_ae, address, decision.reason)
                    )
        except SQLAlchemyError:
            # No catalog means no job row could be written either: refuse for now.
            return SourceDecision(False, "catalog unavailable", transient=True)
        return decision
