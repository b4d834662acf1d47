"""Device rules: a header predicate plus the rectangles where that device draws text.

Rule files live in profiles/pixel/*.yaml so data stewards can edit them. A rule is

    - id: ge-logiq9-us
      label: Logiq US (LOGIQ9)
      action: mask              # mask its regions; `examine` only marks the image for OCR
      when:                     # explicit all / any / not trees; leaves test one attribute
        all:
          - {attribute: Modality, contains: US}
          - {attribute: ManufacturerModelName, contains: [LOGIQ9]}
          - not: {attribute: Rows, equals: 480}
      regions:
        - [0, 0, 640, 30]       # x, y, width, height in pixels (columns, rows)
        - all                   # the whole frame
      keep: ultrasound_regions  # optional: unmask the Sequence of Ultrasound Regions

Leaves: `contains` (case-insensitive substring, any listed alternative, any value of a
multi-valued attribute), `equals` (case-insensitive, numbers compared as numbers),
`missing` (attribute absent), `empty` (present without a value), `present`.
Loading is done once per file content and cached.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydicom.datadict import get_entry, repeater_has_keyword, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

from anonymizer.errors import QuarantineError, QuarantineReason

from .policy import PixelPolicy

RuleAction = Literal["mask", "examine"]

Rect = tuple[int, int, int, int]  # x, y, width, height


class RuleFileError(ValueError):
    """A rule file is malformed; the message names the file and the rule, never PHI."""


@dataclass(frozen=True)
class Leaf:
    attribute: str
    test: Literal["contains", "equals", "missing", "empty", "present"]
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class All:
    items: tuple[Predicate, ...]


@dataclass(frozen=True)
class Any_:
    items: tuple[Predicate, ...]


@dataclass(frozen=True)
class Not:
    item: Predicate


Predicate = Leaf | All | Any_ | Not


@dataclass(frozen=True)
class DeviceRule:
    id: str
    label: str
    action: RuleAction
    when: Predicate
    regions: tuple[Rect | Literal["all"], ...] = ()
    keep_ultrasound_regions: bool = False


# Distinct device signatures remembered per rule set; a national archive sees a few
# hundred device models, and the memo is simply emptied when it fills.
_MEMO_LIMIT = 4096


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[DeviceRule, ...]
    # Rule outcomes by the values of the attributes the rules read: instances of one device
    # share them, and evaluating the whole library per instance was a worker's hot spot.
    _memo: dict[tuple[object, ...], tuple[tuple[DeviceRule, ...], tuple[DeviceRule, ...]]] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    @functools.cached_property
    def attributes(self) -> tuple[str, ...]:
        """Every attribute keyword any rule reads: the outcome depends on these alone."""
        found: set[str] = set()
        for rule in self.rules:
            _collect_attributes(rule.when, found)
        return tuple(sorted(found))

    def matching(self, ds: Dataset, action: RuleAction) -> list[DeviceRule]:
        mask, examine = self.classify(ds)
        return list(mask if action == "mask" else examine)

    def classify(self, ds: Dataset) -> tuple[tuple[DeviceRule, ...], tuple[DeviceRule, ...]]:
        """(mask rules, examine rules) that match `ds`, in library order."""
        # One attribute look-up per keyword for the whole library (it runs per instance).
        cache: dict[str, list[str] | None] = {a: _values(ds, a) for a in self.attributes}
        key = tuple(None if v is None else tuple(v) for v in cache.values())
        outcomes = self._memo.get(key)
        if outcomes is None:
            matched = [r for r in self.rules if evaluate(r.when, ds, cache)]
            outcomes = (
                tuple(r for r in matched if r.action == "mask"),
                tuple(r for r in matched if r.action == "examine"),
            )
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = outcomes
        return outcomes


def _collect_attributes(predicate: Predicate, found: set[str]) -> None:
    if isinstance(predicate, (All, Any_)):
        for item in predicate.items:
            _collect_attributes(item, found)
    elif isinstance(predicate, Not):
        _collect_attributes(predicate.item, found)
    else:
        found.add(predicate.attribute)


# ----------------------------------------------------------------------- evaluation


@functools.lru_cache(maxsize=256)
def _overlay_element(keyword: str) -> int | None:
    """Element number of a repeating-group (60xx) keyword such as OverlayDescription."""
    for element in range(0x0000, 0x4000):
        try:
            if get_entry(Tag(0x6000, element))[4] == keyword:
                return element
        except KeyError:
            continue
    return None


@functools.lru_cache(maxsize=256)
def _repeater_tags(keyword: str) -> tuple[BaseTag, ...]:
    """The 16 overlay-group tags of a repeating-group keyword; none for other keywords."""
    element = _overlay_element(keyword) if repeater_has_keyword(keyword) else None
    if element is None:
        return ()
    return tuple(Tag(g, element) for g in range(0x6000, 0x6020, 2))


def _values(ds: Dataset, keyword: str) -> list[str] | None:
    """The attribute's values as strings; None when absent."""
    tag = tag_for_keyword(keyword)
    element = ds.get(tag) if tag is not None else None
    if element is not None:
        value = element.value
    else:
        present = [t for t in _repeater_tags(keyword) if t in ds]
        if not present:
            return None
        value = ds[present[0]].value
    if value is None:
        return []
    if isinstance(value, bytes):
        return [value.decode("latin-1", errors="replace")]
    if isinstance(value, str):
        return [value]
    try:
        items = list(value)
    except TypeError:
        return [str(value)]
    if items and isinstance(items[0], Dataset):
        return ["<sequence>"]
    return [str(v) for v in items]


def _is_empty(values: list[str]) -> bool:
    return all(not v.strip() for v in values)


def _equal(value: str, wanted: str) -> bool:
    a, b = value.strip().lower(), wanted.strip().lower()
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def evaluate(
    predicate: Predicate, ds: Dataset, cache: dict[str, list[str] | None] | None = None
) -> bool:
    if cache is None:
        cache = {}
    if isinstance(predicate, All):
        return all(evaluate(p, ds, cache) for p in predicate.items)
    if isinstance(predicate, Any_):
        return any(evaluate(p, ds, cache) for p in predicate.items)
    if isinstance(predicate, Not):
        return not evaluate(predicate.item, ds, cache)
    if predicate.attribute not in cache:
        cache[predicate.attribute] = _values(ds, predicate.attribute)
    values = cache[predicate.attribute]
    if predicate.test == "missing":
        return values is None
    if predicate.test == "present":
        return values is not None
    if values is None:
        return False
    if predicate.test == "empty":
        return _is_empty(values)
    if predicate.test == "equals":
        return any(_equal(v, w) for v in values for w in predicate.values)
    # contains: each value alone, and the values joined as DICOM writes them
    haystacks = [v.lower() for v in values] + ["\\".join(values).lower()]
    return any(w.lower() in h for h in haystacks for w in predicate.values)


# -------------------------------------------------------------------------- parsing

_LEAF_TESTS = ("contains", "equals", "missing", "empty", "present")


def _parse_predicate(node: Any, where: str) -> Predicate:
    if not isinstance(node, dict):
        raise RuleFileError(f"{where}: a predicate must be a mapping")
    keys = set(node)
    if keys == {"all"} or keys == {"any"}:
        key = next(iter(keys))
        items = node[key]
        if not isinstance(items, list) or not items:
            raise RuleFileError(f"{where}: '{key}' needs a non-empty list")
        parsed = tuple(_parse_predicate(i, where) for i in items)
        return All(parsed) if key == "all" else Any_(parsed)
    if keys == {"not"}:
        return Not(_parse_predicate(node["not"], where))
    tests = keys & set(_LEAF_TESTS)
    if "attribute" not in keys or len(tests) != 1 or keys - {"attribute"} - tests:
        raise RuleFileError(
            f"{where}: a leaf is {{attribute: Keyword, <one of {', '.join(_LEAF_TESTS)}>}}"
        )
    attribute = str(node["attribute"])
    if tag_for_keyword(attribute) is None and not repeater_has_keyword(attribute):
        raise RuleFileError(f"{where}: unknown DICOM keyword {attribute!r}")
    test = tests.pop()
    raw = node[test]
    if test in ("missing", "empty", "present"):
        if raw is not True:
            raise RuleFileError(f"{where}: '{test}' takes the value true")
        return Leaf(attribute, test)  # type: ignore[arg-type]
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise RuleFileError(f"{where}: '{test}' needs a value")
    return Leaf(attribute, test, tuple(str(v) for v in values))  # type: ignore[arg-type]


def _parse_region(node: Any, where: str) -> Rect | Literal["all"]:
    if node == "all":
        return "all"
    if (
        isinstance(node, list)
        and len(node) == 4
        and all(isinstance(v, int) and v >= 0 for v in node)
        and node[2] > 0
        and node[3] > 0
    ):
        return (node[0], node[1], node[2], node[3])
    raise RuleFileError(f"{where}: a region is [x, y, width, height] or 'all'")


_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def _parse_rule(node: Any, where: str) -> DeviceRule:
    if not isinstance(node, dict):
        raise RuleFileError(f"{where}: a rule must be a mapping")
    allowed = {"id", "label", "action", "when", "regions", "keep", "source", "note"}
    unknown = set(node) - allowed
    if unknown:
        raise RuleFileError(f"{where}: unknown keys {sorted(unknown)}")
    rule_id = str(node.get("id", ""))
    if not _ID.match(rule_id):
        raise RuleFileError(f"{where}: rule id must be lowercase letters, digits, . _ -")
    where = f"{where} ({rule_id})"
    action = node.get("action", "mask")
    if action not in ("mask", "examine"):
        raise RuleFileError(f"{where}: action is 'mask' or 'examine'")
    if "when" not in node:
        raise RuleFileError(f"{where}: missing 'when'")
    regions = tuple(_parse_region(r, where) for r in node.get("regions") or [])
    keep = node.get("keep")
    if keep not in (None, "ultrasound_regions"):
        raise RuleFileError(f"{where}: keep is 'ultrasound_regions' or absent")
    if action == "mask" and not regions:
        raise RuleFileError(f"{where}: a mask rule needs regions")
    return DeviceRule(
        id=rule_id,
        label=str(node.get("label", rule_id)),
        action=action,
        when=_parse_predicate(node["when"], where),
        regions=regions,
        keep_ultrasound_regions=keep == "ultrasound_regions",
    )


def parse_rule_file(text: str, name: str) -> tuple[DeviceRule, ...]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleFileError(f"{name}: not valid YAML ({exc.__class__.__name__})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise RuleFileError(f"{name}: expected a mapping with a 'rules' list")
    unknown = set(doc) - {"rules", "source", "license", "attribution", "description"}
    if unknown:
        raise RuleFileError(f"{name}: unknown keys {sorted(unknown)}")
    rules = tuple(_parse_rule(r, f"{name} rule {i + 1}") for i, r in enumerate(doc["rules"]))
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise RuleFileError(f"{name}: duplicate rule id {rule.id}")
        seen.add(rule.id)
    return rules


@functools.lru_cache(maxsize=64)
def _load_file(path: Path, mtime_ns: int, size: int) -> tuple[DeviceRule, ...]:
    # mtime and size are part of the key so an edited file is read again.
    # Resolved here, once per file content rather than per instance: a rule file that is a
    # link out of the rules folder is refused before it is opened.
    if not path.resolve().is_relative_to(path.parent.resolve()):
        raise RuleFileError(f"rule file {path.name} leads outside the rules folder")
    return parse_rule_file(path.read_text(encoding="utf-8"), path.name)


def load_pixel_rules(rules_dir: Path, names: Sequence[str]) -> RuleSet:
    """The rules of `names` (files `<name>.yaml` in `rules_dir`), in order; cached."""
    keys: list[tuple[Path, int, int]] = []
    for name in names:
        if not re.match(r"^[A-Za-z0-9._-]+$", name) or name.startswith("."):
            raise RuleFileError(f"{name!r} is not a rule file name")
        # No resolve(): it costs a system call per path component, on every instance.
        path = Path(rules_dir) / f"{name}.yaml"
        try:
            stat = path.stat()
        except OSError as exc:
            raise RuleFileError(f"rule file {name}.yaml not found") from exc
        keys.append((path, stat.st_mtime_ns, stat.st_size))
    return _rule_set(tuple(keys))


@functools.lru_cache(maxsize=16)
def _rule_set(files: tuple[tuple[Path, int, int], ...]) -> RuleSet:
    # The same object for the same files, so its memo of outcomes lasts across instances.
    return RuleSet(tuple(rule for key in files for rule in _load_file(*key)))


def rule_rects(
    rule: DeviceRule, ds: Dataset, rows: int, columns: int
) -> tuple[list[Rect], list[Rect]]:
    """(rectangles to fill, rectangles to keep) of a matched rule, clipped to the frame."""
    fill: list[Rect] = []
    for region in rule.regions:
        fill.append((0, 0, columns, rows) if region == "all" else region)
    keep: list[Rect] = []
    if rule.keep_ultrasound_regions:
        for item in ds.get("SequenceOfUltrasoundRegions", []) or []:
            try:
                x0, y0 = int(item.RegionLocationMinX0), int(item.RegionLocationMinY0)
                x1, y1 = int(item.RegionLocationMaxX1), int(item.RegionLocationMaxY1)
            except (AttributeError, TypeError, ValueError):
                continue
            keep.append((x0, y0, x1 - x0 + 1, y1 - y0 + 1))
    return fill, keep


def rules_for(policy: PixelPolicy) -> RuleSet:
    """The policy's device rules (files are parsed once and cached by path and mtime); a
    missing or malformed file quarantines (pixel_policy) rather than letting images by.

    The folder is the one bound to the policy (`bind_rules_dir`, done by the profile
    loader): the core has no folder of its own to fall back on, since an installed core
    cannot know where the steward's rules live."""
    directory = policy.rules_dir
    if directory is None:
        if not policy.rules:
            return load_pixel_rules(Path(), ())
        raise QuarantineError(
            QuarantineReason.PIXEL_POLICY,
            "pixel rules " + ", ".join(policy.rules) + " named but no rules folder bound",
        )
    try:
        return load_pixel_rules(directory, policy.rules)
    except RuleFileError as exc:
        raise QuarantineError(QuarantineReason.PIXEL_POLICY, str(exc)) from exc
