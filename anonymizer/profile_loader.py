"""Loading profiles from YAML: validation with file and line, `extends:`, version digest."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydicom.datadict import DicomDictionary, RepeatersDictionary, tag_for_keyword

from anonymizer.profile_model import TAG_PATTERN, Profile

try:  # the C loader is much faster on the 4,800-line basic profile
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = yaml.SafeLoader

Path_ = tuple[str | int, ...]
_MAX_EXTENDS_DEPTH = 8


class ProfileError(Exception):
    """A profile cannot be used. The message names the file, the line and the reason."""

    def __init__(self, file: str | Path, line: int | None, reason: str) -> None:
        self.file = str(file)
        self.line = line
        self.reason = reason
        where = f"{self.file}:{line}" if line is not None else self.file
        super().__init__(f"{where}: {reason}")


def normalize_institution(name: str) -> str:
    """Institution names as typed in PACS vary in case, accents and spacing."""
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().replace("-", " ").split())


def _compose(text: str, file: Path) -> tuple[Any, dict[Path_, int]]:
    """Parse once: the document's data and the 1-based line of every key/index path."""
    lines: dict[Path_, int] = {}
    loader = _Loader(text)
    try:
        root = loader.get_single_node()

        def walk(node: yaml.Node, path: Path_) -> None:
            lines[path] = node.start_mark.line + 1
            if isinstance(node, yaml.MappingNode):
                seen: set[str] = set()
                for key_node, value_node in node.value:
                    key = str(key_node.value)
                    if key in seen:
                        raise ProfileError(
                            file, key_node.start_mark.line + 1, f"duplicate key {key!r}"
                        )
                    seen.add(key)
                    walk(value_node, (*path, key))
                    lines[(*path, key)] = key_node.start_mark.line + 1
            elif isinstance(node, yaml.SequenceNode):
                for index, item in enumerate(node.value):
                    walk(item, (*path, index))

        if root is None:
            return None, lines
        walk(root, ())
        return loader.construct_document(root), lines
    finally:
        loader.dispose()


def _line_for(lines: Mapping[Path_, int], loc: Path_) -> int | None:
    """The line of the deepest known prefix of `loc` (pydantic adds tags of unions etc.)."""
    for end in range(len(loc), -1, -1):
        key = tuple(loc[:end])
        if key in lines:
            return lines[key]
    return None


def _read_document(file: Path) -> tuple[dict[str, Any], dict[Path_, int]]:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(file, None, f"cannot read profile: {exc.strerror}") from exc
    try:
        data, lines = _compose(text, file)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise ProfileError(file, line, f"invalid YAML: {exc.problem}") from exc
    if not isinstance(data, dict):
        raise ProfileError(file, 1, "a profile must be a mapping (name:, options:, ...)")
    return data, lines


def _validate_document(file: Path, data: dict[str, Any], lines: Mapping[Path_, int]) -> Profile:
    """Check one file on its own so that every error points into that file."""
    for forbidden in ("version", "source_file"):
        if forbidden in data:
            raise ProfileError(file, lines.get((forbidden,)), f"{forbidden!r} is set by the loader")
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        reason = first["msg"]
        if first["type"] == "extra_forbidden":
            reason = f"unknown key {loc[-1]!r}"
        elif first["type"] == "enum":
            reason = f"{first['msg']} (got {first.get('input')!r})"
        where = ".".join(str(part) for part in loc)
        raise ProfileError(file, _line_for(lines, loc), f"{where}: {reason}") from exc
    for section in ("table", "attributes"):
        seen: dict[str, int] = {}
        for index, rule in enumerate(getattr(profile, section)):
            line = _line_for(lines, (section, index))
            if rule.tag in seen:
                raise ProfileError(file, line, f"{section}: tag {rule.tag} named twice")
            seen[rule.tag] = index
            _check_keyword(file, _line_for(lines, (section, index, "keyword")), rule.tag,
                           rule.keyword)
    return profile


def _check_keyword(file: Path, line: int | None, tag_text: str, keyword: str | None) -> None:
    match = TAG_PATTERN.match(tag_text)
    assert match is not None
    group, element = match.group(1), match.group(2)
    if "x" in group or "x" in element:
        if keyword is None:
            return
        pattern = (group + element).upper().replace("X", "x")
        known = [entry[4] for key, entry in RepeatersDictionary.items()
                 if key.upper().replace("X", "x") == pattern]
        if keyword not in known:
            raise ProfileError(file, line, f"keyword {keyword!r} does not match tag {tag_text}")
        return
    tag = int(group + element, 16)
    if keyword is None:
        return
    keyword_tag = tag_for_keyword(keyword)
    if keyword_tag is None:
        raise ProfileError(file, line, f"unknown keyword {keyword!r}")
    if keyword_tag != tag:
        expected = DicomDictionary.get(tag, (None,) * 5)[4]
        hint = f" (the tag is {expected})" if expected else ""
        raise ProfileError(
            file, line, f"keyword {keyword!r} is {_fmt(keyword_tag)}, not {tag_text}{hint}"
        )


def _fmt(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _merge(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Child keys win; attribute and private-keep lists merge by tag / by private address."""
    merged = {key: value for key, value in parent.items() if key not in ("name", "description")}
    for key, value in child.items():
        if key == "attributes":
            by_tag = {rule["tag"]: rule for rule in parent.get("attributes", [])}
            for rule in value:
                by_tag[rule["tag"]] = rule
            merged["attributes"] = list(by_tag.values())
        elif key == "private" and "private" in parent:
            private = {**parent["private"], **value}
            if "keep" in value:
                address = lambda r: (r["creator"], r.get("group"), r["element"])  # noqa: E731
                keep = {address(r): r for r in parent["private"].get("keep", [])}
                keep.update({address(r): r for r in value["keep"]})
                private["keep"] = list(keep.values())
            merged["private"] = private
        elif key in ("pseudonyms", "generalize") and key in parent:
            merged[key] = {**parent[key], **value}
        else:
            merged[key] = value
    return merged


def _resolve(file: Path, depth: int = 0) -> tuple[dict[str, Any], list[Path]]:
    """The merged raw document for `file` and every file it was built from."""
    if depth > _MAX_EXTENDS_DEPTH:
        raise ProfileError(file, None, "extends: chain too deep (a loop?)")
    data, lines = _read_document(file)
    profile = _validate_document(file, data, lines)
    if profile.extends is None:
        return _canonical(profile), [file]
    parent_file = file.parent / f"{profile.extends}.yaml"
    if not parent_file.is_file():
        raise ProfileError(
            file, lines.get(("extends",)), f"extends: no profile {profile.extends!r} next to it"
        )
    parent, files = _resolve(parent_file, depth + 1)
    child = _canonical(profile, only=set(data))
    return _merge(parent, child), [file, *files]


def _canonical(profile: Profile, only: set[str] | None = None) -> dict[str, Any]:
    dumped: dict[str, Any] = profile.model_dump(
        mode="json", exclude={"version", "source_file"}, exclude_unset=only is not None
    )
    if only is not None:
        dumped = {key: value for key, value in dumped.items() if key in only}
    return dumped


def _load_regions(profile_file: Path, table: str) -> dict[str, str]:
    path = (profile_file.parent / table).resolve()
    data, lines = _read_document(path)
    regions = data.get("regions")
    if not isinstance(regions, dict) or set(data) - {"regions", "source", "steward"}:
        raise ProfileError(path, 1, "a region table has `regions: {Region: [institution, ...]}`")
    mapping: dict[str, str] = {}
    for region in regions:
        # an already generalized value stays what it is (re-processing an output)
        mapping[normalize_institution(str(region))] = str(region)
    for region, institutions in regions.items():
        if not isinstance(institutions, list):
            raise ProfileError(path, lines.get(("regions", region)), "expected a list of names")
        for index, institution in enumerate(institutions):
            key = normalize_institution(str(institution))
            if key in mapping and mapping[key] != region:
                raise ProfileError(path, lines.get(("regions", region, index)),
                                   "institution listed under two regions")
            mapping[key] = str(region)
    return mapping


@lru_cache(maxsize=32)
def _load_cached(file: Path, stamp: tuple[tuple[str, float, int], ...]) -> Profile:
    merged, files = _resolve(file)
    child_data, _ = _read_document(file)
    merged["name"] = child_data.get("name", merged.get("name"))
    merged["description"] = child_data.get("description", "")
    merged["extends"] = child_data.get("extends")
    if merged.get("generalize", {}).get("region_table"):
        table = merged["generalize"]["region_table"]
        # the table is resolved next to the file that names it (the child or a parent)
        table_file = next((f for f in files if (f.parent / table).is_file()), file)
        merged["regions"] = {**_load_regions(table_file, table), **merged.get("regions", {})}
    profile = Profile.model_validate(merged)
    from anonymizer.floor_check import enforce_floor  # it reads files with this module

    enforce_floor(profile, files)
    content = json.dumps(_canonical(profile), sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(content.encode("utf-8")).hexdigest()[:16]
    update: dict[str, Any] = {"version": digest, "source_file": str(file)}
    if profile.pixel is not None:
        from anonymizer.pixels import bind_rules_dir  # numpy/scipy only when pixels are used

        # pixel rule names resolve in the pixel/ folder next to the profiles
        update["pixel"] = bind_rules_dir(profile.pixel, file.parent / "pixel")
    return profile.model_copy(update=update)


def load_profile_file(file: Path) -> Profile:
    file = file.resolve()
    if not file.is_file():
        raise ProfileError(file, None, "no such profile file")
    # Cache by content stamps so that an edited profile is reloaded.
    stamp = tuple(
        (str(p), p.stat().st_mtime, p.stat().st_size)
        for p in sorted(file.parent.glob("*.yaml"))
    )
    return _load_cached(file, stamp)

