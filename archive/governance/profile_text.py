"""A profile as a steward uploads it: its name, its validation by the workers' loader, and
what it changes against another version."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from anonymizer.engine import ProfileError, load_profile
from anonymizer.errors import RejectError
from anonymizer.floor import FLOOR_NAME
from anonymizer.profile_model import Profile

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_PROFILE_BYTES = 2 * 1024 * 1024


@contextmanager
def _profile_tree(name: str, yaml_text: str, profiles_dir: Path) -> Iterator[Path]:
    """A temporary copy of the profiles folder with the uploaded file in it, so that
    `extends:` and region tables resolve exactly as they would for a file on disk.

    Copies, not links: the loader confines every file a profile names to the folder of the
    profile, symlinks followed, and a link back into the real folder would lead out of the
    temporary one. An entry that leads outside the real folder is not read: it becomes a
    link to where it leads, which the loader refuses if a profile names it."""
    with tempfile.TemporaryDirectory(prefix="amana-profile-") as tmp:
        root = Path(tmp)
        if profiles_dir.is_dir():
            real_root = profiles_dir.resolve()
            _mirror(profiles_dir, root, real_root, {real_root}, skip=f"{name}.yaml")
        (root / f"{name}.yaml").write_text(yaml_text, encoding="utf-8")
        yield root / f"{name}.yaml"


def _mirror(
    source: Path, target: Path, real_root: Path, above: set[Path], skip: str | None = None
) -> None:
    """Copy `source` into `target`; `above` holds the folders being copied (links to one of
    them would loop)."""
    for entry in source.iterdir():
        if entry.name == skip:
            continue
        resolved = entry.resolve()
        if not resolved.is_relative_to(real_root):
            os.symlink(resolved, target / entry.name)
        elif resolved.is_dir():
            if resolved in above:
                continue
            (target / entry.name).mkdir()
            _mirror(resolved, target / entry.name, real_root, above | {resolved})
        elif resolved.is_file():
            shutil.copyfile(resolved, target / entry.name)


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
    """Validate and resolve a profile text with the workers' loader. Errors name the line;
    a profile below the floor (profiles/floor.yaml) is refused there like any other error."""
    name = profile_name_of(yaml_text)
    if name == FLOOR_NAME:
        # the floor ships with Amana and is never lowered by a vote of stewards
        raise RejectError(
            f"uploaded profile: `{FLOOR_NAME}` is the national floor; it is not proposed",
            code="invalid_profile",
        )
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


def lint_problems(profile: Profile) -> list[str]:
    """What `amana profile lint` reports beyond the loader's errors: pixel rule files or an
    allow-list missing or malformed, OCR languages not installed (which would otherwise show
    only when the first image arrives). Empty when there is nothing to fix."""
    if profile.pixel is None:
        return []
    from anonymizer.pixels import lint_pixel_policy

    return [f"pixel: {problem}" for problem in lint_pixel_policy(profile.pixel)]


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
