"""The floor applied to profile files: reading floor.yaml (the shipped one and the one beside
the profiles) and refusing a profile below it with the file and line of the offending rule.

Called by the loader after `extends:` merging; kept apart so that the loader stays about
reading and merging files.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from anonymizer.floor import (
    FLOOR_FILE,
    Floor,
    FloorError,
    Violation,
    check_profile,
    floor_from_profile,
    shipped_floor_file,
)
from anonymizer.profile_loader import ProfileError, _read_document, _validate_document
from anonymizer.profile_model import Profile


class FloorViolationError(ProfileError):
    """A profile keeps or weakens floor attributes; `each` has one error per rule."""

    def __init__(self, file: str | Path, line: int | None, reason: str,
                 each: tuple[ProfileError, ...]) -> None:
        super().__init__(file, line, reason)
        self.each = each


@lru_cache(maxsize=8)
def _floor_cached(file: Path, stamp: tuple[float, int]) -> Floor:
    data, lines = _read_document(file)
    profile = _validate_document(file, data, lines)
    if profile.extends is not None:
        raise ProfileError(file, lines.get(("extends",)), "the floor extends nothing")
    try:
        return floor_from_profile(profile)
    except FloorError as exc:
        raise ProfileError(file, None, str(exc)) from exc


def load_floor(profiles_dir: Path | None) -> Floor:
    """The floor beside the profiles and the shipped one: the stricter of both applies, so
    a floor cannot be lowered by editing a copy or pointing at another folder."""
    candidates = [shipped_floor_file()]
    if profiles_dir is not None:
        candidates.append(profiles_dir / FLOOR_FILE)
    files = sorted({f.resolve() for f in candidates if f is not None and f.is_file()})
    if not files:
        raise ProfileError(profiles_dir or FLOOR_FILE, None,
                           f"no {FLOOR_FILE}: the floor cannot be checked")
    floor: Floor | None = None
    for file in files:
        stat = file.stat()
        loaded = _floor_cached(file, (stat.st_mtime, stat.st_size))
        floor = loaded if floor is None else floor.stricter(loaded)
    assert floor is not None
    return floor


def enforce_floor(profile: Profile, files: list[Path]) -> None:
    """Refuse a profile whose effective rules keep or weaken a floor attribute, naming the
    file and line of the rule (or of the option) that does it."""
    violations = check_profile(profile, load_floor(files[0].parent))
    if not violations:
        return
    located = [(_locate(violation, files), violation) for violation in violations]
    # the file being checked first: that is where the steward can act
    located.sort(key=lambda item: (item[0][0] != files[0], item[0][1] or 0))
    (file, line), first = located[0]
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    raise FloorViolationError(
        file, line, first.reason() + more,
        tuple(ProfileError(f, n, v.reason()) for (f, n), v in located),
    )


def _locate(violation: Violation, files: list[Path]) -> tuple[Path, int | None]:
    """The file (child first) and line where the offending rule or option is written."""
    documents = [(file, *_read_document(file)) for file in files]
    if violation.option is not None:
        for file, data, lines in documents:
            options = data.get("options")
            if isinstance(options, list) and violation.option in options:
                return file, lines.get(("options", options.index(violation.option)))
    if violation.private_address is not None:
        creator, group, element = violation.private_address
        for file, data, lines in documents:
            keep = (data.get("private") or {}).get("keep") or []
            for index, rule in enumerate(keep):
                if (isinstance(rule, dict) and str(rule.get("creator", "")).strip() == creator
                        and str(rule.get("element", "")).upper() == element):
                    return file, lines.get(("private", "keep", index))
        return files[0], None
    assert violation.tag is not None
    wanted = f"({violation.tag >> 16:04X},{violation.tag & 0xFFFF:04X})"
    for section in ("attributes", "table"):
        for file, data, lines in documents:
            rules = data.get(section)
            if not isinstance(rules, list):
                continue
            for index, rule in enumerate(rules):
                if isinstance(rule, dict) and str(rule.get("tag", "")).upper() == wanted:
                    return file, lines.get((section, index))
            if section == "table":
                break  # a child's table replaces its parent's
    return files[0], None
