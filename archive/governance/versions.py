"""Profile governance: propose, review, approve by a second steward, activate.

A version is the digest the profile loader computes over the resolved profile, so the
version recorded with every archived instance names exactly the rules that processed it.
A proposal is validated by the same loader the workers use; activation needs the approval
of a steward other than the proposer; workers poll for the active version.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from anonymizer.engine import Deidentifier, ProfileError, key_from_bytes, load_profile
from anonymizer.errors import RejectError
from anonymizer.profile_model import Profile
from archive import audit
from archive.audit.unit import Work
from archive.catalog.models_governance import ProfileApproval, ProfileVersion, ProfileVersionStatus
from archive.governance.auth import Principal
from archive.work.jobs import utcnow

log = logging.getLogger(__name__)

# Approvals needed from stewards other than the proposer before activation.
REQUIRED_APPROVALS = 1
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_PROFILE_BYTES = 2 * 1024 * 1024


class ApprovalRequired(RejectError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="conflict")


@dataclass(frozen=True)
class ActiveProfile:
    id: int
    name: str
    version: str
    yaml_text: str


# --- loading a profile text -----------------------------------------------------------------


@contextmanager
def _profile_tree(name: str, yaml_text: str, profiles_dir: Path) -> Iterator[Path]:
    """A temporary copy of the profiles folder (by links) with the uploaded file in it, so that
    `extends:` and region tables resolve exactly as they would for a file on disk."""
    with tempfile.TemporaryDirectory(prefix="amana-profile-") as tmp:
        root = Path(tmp)
        if profiles_dir.is_dir():
            for entry in profiles_dir.iterdir():
                if entry.name != f"{name}.yaml":
                    os.symlink(entry.resolve(), root / entry.name)
        (root / f"{name}.yaml").write_text(yaml_text, encoding="utf-8")
        yield root / f"{name}.yaml"


def profile_name_of(yaml_text: str) -> str:
    if len(yaml_text.encode("utf-8")) > MAX_PROFILE_BYTES:
        raise RejectError("profile is larger than 2 MB", code="invalid_profile")
    try:
        data = yaml.safe_load(yaml_text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise RejectError(f"uploaded profile: {line}invalid YAML", code="invalid_profile") from exc
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise RejectError(
            "uploaded profile: `name:` must be lower-case letters, digits, '.', '_' or '-'",
            code="invalid_profile",
        )
    return name


def load_profile_text(yaml_text: str, profiles_dir: Path) -> Profile:
    """Validate and resolve a profile text with the workers' loader. Errors name the line."""
    name = profile_name_of(yaml_text)
    with _profile_tree(name, yaml_text, profiles_dir) as file:
        try:
            profile = load_profile(str(file), profiles_dir)
        except ProfileError as exc:
            where = "uploaded profile" if Path(exc.file).name == file.name else Path(exc.file).name
            line = f" line {exc.line}" if exc.line is not None else ""
            raise RejectError(f"{where}{line}: {exc.reason}", code="invalid_profile") from exc
    if profile.pixel is not None:
        from anonymizer.pixels import bind_rules_dir

        # Pixel rules are read lazily; the temporary tree is gone by then, so point them at
        # the real folder the links led to.
        profile = profile.model_copy(
            update={"pixel": bind_rules_dir(profile.pixel, profiles_dir / "pixel")}
        )
    return profile


# --- diff -----------------------------------------------------------------------------------


def _flatten(data: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(data, list) and data and all(isinstance(i, dict) and "tag" in i for i in data):
        for item in data:
            _flatten({k: v for k, v in item.items() if k != "tag"}, f"{prefix}[{item['tag']}]", out)
    elif (
        isinstance(data, list)
        and data
        and all(isinstance(i, dict) and "creator" in i for i in data)
    ):
        for item in data:
            address = f"{item['creator']}/{item.get('group') or '*'}/{item['element']}"
            rest = {k: v for k, v in item.items() if k not in ("creator", "group", "element")}
            _flatten(rest, f"{prefix}[{address}]", out)
    else:
        out[prefix] = data


def profile_diff(old: Profile | None, new: Profile) -> list[dict[str, Any]]:
    """Every setting that differs, as {path, old, new}; attribute rules keyed by tag."""
    exclude = {"version", "source_file"}
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if old is not None:
        _flatten(old.model_dump(mode="json", exclude=exclude), "", before)
    _flatten(new.model_dump(mode="json", exclude=exclude), "", after)
    changes = []
    for path in sorted(set(before) | set(after)):
        if before.get(path) != after.get(path):
            changes.append({"path": path, "old": before.get(path), "new": after.get(path)})
    return changes


# --- versions -------------------------------------------------------------------------------


def version_row(pv: ProfileVersion) -> dict[str, Any]:
    return {
        "id": pv.id,
        "name": pv.name,
        "version": pv.version,
        "status": pv.status.value,
        "proposed_by": pv.proposed_by,
        "proposed_at": pv.proposed_at.isoformat() if pv.proposed_at else None,
        "approved_by": [a.approved_by for a in pv.approvals],
        "activated_by": pv.activated_by,
        "activated_at": pv.activated_at.isoformat() if pv.activated_at else None,
    }


def list_versions(session: Session, name: str | None = None) -> list[dict[str, Any]]:
    query = select(ProfileVersion).order_by(ProfileVersion.id)
    if name:
        query = query.where(ProfileVersion.name == name)
    return [version_row(pv) for pv in session.scalars(query)]


def get_version(session: Session, ref: str | int) -> ProfileVersion:
    """By row id, by version digest or by a unique prefix of the digest."""
    text = str(ref)
    found: ProfileVersion | None = None
    if text.isdigit() and len(text) < 10:
        found = session.get(ProfileVersion, int(text))
    if found is None:
        matches = session.scalars(
            select(ProfileVersion).where(ProfileVersion.version.startswith(text, autoescape=True))
        ).all()
        if len(matches) > 1:
            raise RejectError(f"{text!r} names several versions; give more digits", code="conflict")
        found = matches[0] if matches else None
    if found is None:
        raise RejectError(f"no profile version {text!r}", code="not_found")
    return found


def active_version_row(session: Session, name: str | None = None) -> ProfileVersion | None:
    query = select(ProfileVersion).where(ProfileVersion.status == ProfileVersionStatus.ACTIVE)
    if name:
        query = query.where(ProfileVersion.name == name)
    return session.scalars(
        query.order_by(ProfileVersion.activated_at.desc(), ProfileVersion.id.desc())
    ).first()


def active_profile(session: Session, name: str | None = None) -> ActiveProfile | None:
    """The version workers must use (for `name`, or the most recently activated of any)."""
    row = active_version_row(session, name)
    if row is None:
        return None
    return ActiveProfile(id=row.id, name=row.name, version=row.version, yaml_text=row.yaml_text)


@dataclass(frozen=True)
class Proposal:
    version: ProfileVersion
    created: bool
    diff: list[dict[str, Any]]
    against: str | None


def propose(
    session: Session,
    yaml_text: str,
    principal: Principal,
    profiles_dir: Path,
    *,
    client_address: str | None = None,
    work: Work | None = None,
) -> Proposal:
    """Validate, diff against the active version (or the file on disk), store as PROPOSED."""
    try:
        profile = load_profile_text(yaml_text, profiles_dir)
    except RejectError:
        _emit(
            session,
            work,
            _governance_event(
                principal,
                audit.Action.CREATE,
                None,
                client_address,
                {"result": "invalid"},
                outcome=audit.Outcome.MINOR_FAILURE,
            ),
        )
        raise
    baseline, against = _baseline(session, profile.name, profiles_dir)
    diff = profile_diff(baseline, profile)
    existing = session.scalars(
        select(ProfileVersion).where(
            ProfileVersion.name == profile.name, ProfileVersion.version == profile.version
        )
    ).first()
    created = existing is None
    if existing is None:
        existing = ProfileVersion(
            name=profile.name,
            version=profile.version,
            yaml_text=yaml_text,
            status=ProfileVersionStatus.PROPOSED,
            proposed_by=principal.token_id,
            proposed_at=utcnow(),
        )
        session.add(existing)
        session.flush()
    _emit(
        session,
        work,
        _governance_event(
            principal,
            audit.Action.CREATE,
            existing,
            client_address,
            {"step": "propose", "new": created, "changes": len(diff), "against": against},
        ),
    )
    return Proposal(existing, created, diff, against)


def _baseline(session: Session, name: str, profiles_dir: Path) -> tuple[Profile | None, str | None]:
    row = active_version_row(session, name)
    if row is not None:
        try:
            return load_profile_text(row.yaml_text, profiles_dir), row.version
        except RejectError:
            log.warning("active profile version %s no longer loads", row.version)
    try:
        on_disk = load_profile(name, profiles_dir)
    except ProfileError:
        return None, None
    return on_disk, on_disk.version


def approve(
    session: Session,
    ref: str | int,
    principal: Principal,
    *,
    client_address: str | None = None,
    work: Work | None = None,
) -> ProfileVersion:
    pv = get_version(session, ref)
    if pv.status != ProfileVersionStatus.PROPOSED:
        raise RejectError(
            f"version {pv.version} is {pv.status.value}, not PROPOSED", code="conflict"
        )
    if principal.token_id == pv.proposed_by:
        _emit(
            session,
            work,
            _governance_event(
                principal,
                audit.Action.UPDATE,
                pv,
                client_address,
                {"step": "approve", "refused": "proposer cannot approve"},
                outcome=audit.Outcome.MINOR_FAILURE,
            ),
        )
        raise ApprovalRequired(
            "a profile version must be approved by a steward other than the one who proposed it"
        )
    if any(a.approved_by == principal.token_id for a in pv.approvals):
        raise RejectError("already approved by this steward", code="conflict")
    try:
        with session.begin_nested():
            session.add(
                ProfileApproval(
                    profile_version_id=pv.id, approved_by=principal.token_id, approved_at=utcnow()
                )
            )
    except IntegrityError as exc:
        raise RejectError("already approved by this steward", code="conflict") from exc
    session.refresh(pv)
    _emit(
        session,
        work,
        _governance_event(principal, audit.Action.UPDATE, pv, client_address, {"step": "approve"}),
    )
    return pv


def activate(
    session: Session,
    ref: str | int,
    principal: Principal,
    *,
    client_address: str | None = None,
    work: Work | None = None,
) -> ProfileVersion:
    """Make a version the active one for its name; the previous active one is retired.

    Refusals are appended to the session before raising: commit it in both cases."""
    pv = get_version(session, ref)
    if pv.status == ProfileVersionStatus.ACTIVE:
        return pv
    # A RETIRED version was approved before: activating it again is a rollback, under the
    # same approval rule below.
    second = {a.approved_by for a in pv.approvals} - {pv.proposed_by}
    if len(second) < REQUIRED_APPROVALS:
        _emit(
            session,
            work,
            _governance_event(
                principal,
                audit.Action.UPDATE,
                pv,
                client_address,
                {"step": "activate", "refused": "second approval missing"},
                outcome=audit.Outcome.MINOR_FAILURE,
            ),
        )
        # The refusal is committed by the caller even though the activation is not.
        raise ApprovalRequired(
            f"version {pv.version} needs the approval of a second steward before activation"
        )
    now = utcnow()
    previous = active_version_row(session, pv.name)
    if previous is not None:
        previous.status = ProfileVersionStatus.RETIRED
        previous.retired_at = now
    pv.status = ProfileVersionStatus.ACTIVE
    pv.activated_by = principal.token_id
    pv.activated_at = now
    session.flush()
    _emit(
        session,
        work,
        _governance_event(
            principal,
            audit.Action.UPDATE,
            pv,
            client_address,
            {"step": "activate", "replaces": previous.version if previous else None},
        ),
    )
    return pv


def _emit(session: Session, work: Work | None, record: audit.AuditRecord) -> None:
    """Append the step's event, or, inside a caller's audited unit of work, hand its details
    to that unit's single event (which records the refusal itself if the step raises)."""
    if work is None:
        audit.append(session, record)
        return
    detail = dict(record.detail)
    if "refused" in detail:  # the unit writes the refusal's code under "refused"
        detail["reason"] = detail.pop("refused")
    work.note(object_id=record.object_id, **detail)


def _governance_event(
    principal: Principal,
    action: audit.Action,
    pv: ProfileVersion | None,
    client_address: str | None,
    detail: dict[str, Any],
    *,
    outcome: audit.Outcome = audit.Outcome.SUCCESS,
) -> audit.AuditRecord:
    if pv is not None:
        detail = {"profile": pv.name, **detail}
    return audit.AuditRecord(
        event_id=audit.EventId.SECURITY_ALERT,
        event_type=audit.EventType.SECURITY_CONFIGURATION,
        action=action,
        outcome=outcome,
        actor=principal.token_id,
        actor_role=principal.role.value,
        client_address=client_address,
        object_type="profile_version",
        object_id=pv.version if pv is not None else None,
        detail=detail,
    )


# --- workers --------------------------------------------------------------------------------


class ActiveProfileWatcher:
    """What a worker asks before each job: the profile to use now.

    It reads the active version from the catalog at most every `interval_s` seconds. With no
    active version in the catalog it uses the named profile from the profiles folder. A
    version that no longer loads to the same digest (a parent profile changed on disk since
    approval) is refused, and the worker keeps the profile it had.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        profiles_dir: Path,
        default_name: str,
        *,
        interval_s: float = 30.0,
    ) -> None:
        self.sessions = sessions
        self.profiles_dir = profiles_dir
        self.default_name = default_name
        self.interval_s = interval_s
        self._profile: Profile | None = None
        self._checked_at = float("-inf")

    def current(self) -> Profile:
        if self._profile is None or time.monotonic() - self._checked_at >= self.interval_s:
            self._refresh()
        assert self._profile is not None
        return self._profile

    def _refresh(self) -> None:
        with self.sessions() as session:
            active = active_profile(session, self.default_name)
        self._checked_at = time.monotonic()
        if active is None:
            # Cheap: the loader caches by file stamps, and an edited file is picked up.
            self._profile = load_profile(self.default_name, self.profiles_dir)
            return
        if self._profile is not None and self._profile.version == active.version:
            return
        try:
            profile = load_profile_text(active.yaml_text, self.profiles_dir)
        except RejectError as exc:
            log.error("active profile version %s does not load: %s", active.version, exc)
            profile = None
        if profile is None or profile.version != active.version:
            log.error(
                "active profile version %s resolves to a different digest now; keeping %s",
                active.version,
                self._profile.version if self._profile else "nothing",
            )
            if self._profile is None:
                raise RejectError("the active profile version cannot be loaded", code="profile")
            return
        log.info("profile %s: now using version %s", active.name, active.version)
        self._profile = profile


def refresh_deidentifier(current: Deidentifier, watcher: ActiveProfileWatcher) -> Deidentifier:
    """The worker's engine for the next job: the same object unless the active version
    changed, then a new one with the same key (compiling a profile is not free)."""
    profile = watcher.current()
    if profile.version == current.profile.version:
        return current
    return Deidentifier(profile, current.key)


# --- dry run ---------------------------------------------------------------------------------


def dry_run(profile: Profile, samples: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """Run the profile on sample files with a throwaway key: the explain table, the outcome
    and a preview of the cleaned pixels for each. Nothing is stored or audited in detail,
    because the explain table shows the samples' own values to the steward who sent them."""
    deidentifier = Deidentifier(profile, key_from_bytes(secrets.token_bytes(32)))
    results = []
    for filename, data in samples:
        rows, outcome = deidentifier.explain(data)
        entry: dict[str, Any] = {"file": filename, "explain": [_explain_row(r) for r in rows]}
        if isinstance(outcome, Exception):
            entry["result"] = "quarantined"
            entry["reason"] = getattr(outcome, "reason", "processing_error")
            entry["message"] = getattr(outcome, "message", type(outcome).__name__)
            entry["preview_png"] = None
        else:
            entry["result"] = "archived"
            entry["pixel_actions"] = list(outcome.facts.pixel_actions)
            entry["preview_png"] = _pixel_preview(outcome.data)
        results.append(entry)
    return results


def _explain_row(row: tuple[int, str, Any, object, object]) -> dict[str, Any]:
    tag, vr, rule, before, after = row
    return {
        "tag": f"({tag >> 16:04X},{tag & 0xFFFF:04X})",
        "vr": vr,
        "keyword": getattr(rule, "keyword", "") if rule is not None else "",
        "action": getattr(rule, "action", None) if rule is not None else "default: remove",
        "option": getattr(rule, "option", None) if rule is not None else None,
        "before": _short(before),
        "after": _short(after),
    }


def _short(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    text = str(value)
    return text if len(text) <= 200 else text[:200] + "…"


def _pixel_preview(data: bytes, max_side: int = 256) -> str | None:
    """The first frame of the cleaned output as a small base64 PNG (None without pixels)."""
    import base64
    from io import BytesIO

    import numpy as np
    from PIL import Image
    from pydicom import dcmread

    try:
        ds = dcmread(BytesIO(data))
        if "PixelData" not in ds:
            return None
        pixels = ds.pixel_array
    except Exception:  # a preview is a convenience; the outcome above is the answer
        return None
    frame = pixels[0] if int(ds.get("NumberOfFrames", 1) or 1) > 1 else pixels
    frame = np.asarray(frame, dtype=np.float64)
    low, high = float(frame.min()), float(frame.max())
    scaled = (frame - low) / (high - low) * 255.0 if high > low else np.zeros_like(frame)
    image = Image.fromarray(scaled.astype(np.uint8))
    image.thumbnail((max_side, max_side))
    buffer = BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
