"""Loading profiles from YAML: validation with file and line, `extends:`, version digest."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydicom.datadict import DicomDictionary, RepeatersDictionary, tag_for_keyword

from anonymizer.profile_model import TAG_PATTERN, DatasetPrivacy, Profile

try:  # the C loader is much faster on the 4,800-line basic profile
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = yaml.SafeLoader

Path_ = tuple[str | int, ...]
_MAX_EXTENDS_DEPTH = 8
# `extends:` names a profile of the same folder, never a path.
_PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# The OCR program is looked up on the worker's PATH: a profile names it, never a path to run.
_PROGRAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Tesseract language packs (`eng`, `chi_sim`, `script/Latin`): names inside its data folder.
_LANGUAGE = re.compile(r"^[A-Za-z0-9_]+(/[A-Za-z0-9_]+)?$")


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
        elif key in ("pseudonyms", "generalize", "datasets") and key in parent:
            merged[key] = {**parent[key], **value}
        else:
            merged[key] = value
    return merged


def _confined(root: Path, path: Path, file: Path, line: int | None, what: str) -> Path:
    """`path` after symlinks, when it lies inside the profiles folder `root` (resolved).

    Every file a profile names goes through here before it is opened: a proposed profile
    must not make the server read anything else (the pseudonym key, say)."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise ProfileError(file, line, f"{what} leads outside the profiles folder")
    return resolved


def _region_table_file(root: Path, table: str, file: Path, line: int | None) -> Path:
    relative = Path(table)
    if relative.is_absolute() or ".." in relative.parts or "\\" in table:
        raise ProfileError(
            file, line, "generalize.region_table: a path relative to the profiles folder"
        )
    return _confined(root, root / relative, file, line, "generalize.region_table")


def _check_ocr_names(profile: Profile, file: Path, lines: Mapping[Path_, int]) -> None:
    """The OCR settings name a program, language packs and a data folder: names only, or
    one of the system's tesseract data folders, so that a proposed profile cannot make a
    dry run execute or read a file of its choosing."""
    assert profile.pixel is not None
    ocr = profile.pixel.ocr
    where: Path_ = ("pixel", "ocr")
    if not _PROGRAM_NAME.match(ocr.command):
        raise ProfileError(file, _line_for(lines, (*where, "command")),
                           "pixel.ocr.command: a program name looked up on PATH, not a path")
    for index, language in enumerate(ocr.languages):
        if not _LANGUAGE.match(language):
            raise ProfileError(file, _line_for(lines, (*where, "languages", index)),
                               "pixel.ocr.languages: a tesseract language name")
    for index, language in enumerate(ocr.detect_languages or []):
        if not _LANGUAGE.match(language):
            raise ProfileError(file, _line_for(lines, (*where, "detect_languages", index)),
                               "pixel.ocr.detect_languages: a tesseract language name")
    if ocr.tessdata is not None:
        from anonymizer.pixels.tesseract import TESSDATA_DIRS

        if ocr.tessdata.rstrip("/") not in TESSDATA_DIRS:
            raise ProfileError(
                file, _line_for(lines, (*where, "tessdata")),
                "pixel.ocr.tessdata: one of the system's tesseract data folders ("
                + ", ".join(TESSDATA_DIRS) + ")",
            )


def _resolve(file: Path, root: Path, depth: int = 0) -> tuple[dict[str, Any], list[Path]]:
    """The merged raw document for `file` and every file it was built from."""
    if depth > _MAX_EXTENDS_DEPTH:
        raise ProfileError(file, None, "extends: chain too deep (a loop?)")
    data, lines = _read_document(file)
    profile = _validate_document(file, data, lines)
    if profile.generalize.region_table is not None:
        _region_table_file(root, profile.generalize.region_table, file,
                           _line_for(lines, ("generalize", "region_table")))
    if profile.pixel is not None:
        _check_ocr_names(profile, file, lines)
    if profile.extends is None:
        return _canonical(profile), [file]
    line = lines.get(("extends",))
    if not _PROFILE_NAME.match(profile.extends):
        raise ProfileError(
            file, line, "extends: names a profile (lower-case letters, digits, '.', '_', '-'), "
            "not a path"
        )
    parent_file = _confined(root, root / f"{profile.extends}.yaml", file, line,
                            f"extends: {profile.extends!r}")
    if not parent_file.is_file():
        raise ProfileError(file, line, f"extends: no profile {profile.extends!r} next to it")
    parent, files = _resolve(parent_file, root, depth + 1)
    child = _canonical(profile, only=set(data))
    return _merge(parent, child), [file, *files]


def _canonical(profile: Profile, only: set[str] | None = None) -> dict[str, Any]:
    dumped: dict[str, Any] = profile.model_dump(
        mode="json", exclude={"version", "source_file"}, exclude_unset=only is not None
    )
    if only is not None:
        dumped = {key: value for key, value in dumped.items() if key in only}
    return dumped


def _digested(profile: Profile) -> dict[str, Any]:
    """What the version digest covers. Dataset thresholds at their defaults are left out, so
    the versions of profiles written before the `datasets` section stay what the catalog
    recorded; any other value changes the version like every rule does."""
    content = _canonical(profile)
    if content.get("datasets") == DatasetPrivacy().model_dump(mode="json"):
        del content["datasets"]
    return content


def _load_regions(path: Path) -> dict[str, str]:
    """The region table at `path`, already confined to the profiles folder."""
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
def _load_cached(
    file: Path, root: Path, stamp: tuple[tuple[str, float, int], ...]
) -> Profile:
    merged, files = _resolve(file, root)
    child_data, _ = _read_document(file)
    merged["name"] = child_data.get("name", merged.get("name"))
    merged["description"] = child_data.get("description", "")
    merged["extends"] = child_data.get("extends")
    if merged.get("generalize", {}).get("region_table"):
        # every file of the chain lives in `root`, so the table is relative to it
        table_file = _region_table_file(root, merged["generalize"]["region_table"], file, None)
        merged["regions"] = {**_load_regions(table_file), **merged.get("regions", {})}
    profile = Profile.model_validate(merged)
    from anonymizer.floor_check import enforce_floor  # it reads files with this module

    enforce_floor(profile, files)
    content = json.dumps(_digested(profile), sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(content.encode("utf-8")).hexdigest()[:16]
    update: dict[str, Any] = {"version": digest, "source_file": str(file)}
    if profile.pixel is not None:
        from anonymizer.pixels import bind_rules_dir  # numpy/scipy only when pixels are used

        # pixel rule names resolve in the pixel/ folder next to the profiles
        update["pixel"] = bind_rules_dir(profile.pixel, root / "pixel")
    return profile.model_copy(update=update)


def load_profile_file(file: Path) -> Profile:
    """The profile in `file`; its folder is the profiles folder that every file it names
    (`extends:`, region table) must resolve into, symlinks followed."""
    root = file.parent.resolve()
    resolved = _confined(root, file, file, None, "the profile file")
    if not resolved.is_file():
        raise ProfileError(resolved, None, "no such profile file")
    # Cache by content stamps so that an edited profile is reloaded.
    stamp = tuple(_stamp(p) for p in sorted(root.glob("*.yaml")))
    return _load_cached(resolved, root, stamp)


def _stamp(path: Path) -> tuple[str, float, int]:
    try:
        info = path.stat()
    except OSError:  # a dangling link: refused if named, irrelevant otherwise
        info = path.lstat()
    return str(path), info.st_mtime, info.st_size

