"""The header walk: every element at every depth gets the operation its rule says.

Elements the profile does not name are removed; private elements are removed unless kept
by (creator, group, element). Pixel Data and other kept values are never decoded: kept
elements stay raw and the writer copies their received bytes (see fastwrite).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pydicom import config
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID_dictionary

from anonymizer.dates import age_years_from_as, shift_da, shift_dt
from anonymizer.identity import IdentifyingValues
from anonymizer.profile_loader import normalize_institution
from anonymizer.pseudonyms import Pseudonymizer
from anonymizer.rules import CompiledProfile, Op, Rule
from anonymizer.textclean import TextCleaner
from anonymizer.textnorm import normalize
from anonymizer.vr import DATE_VRS, MAX_LENGTH, dummy_for, truncate

_TEXT_FOR_CLEAN = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "CS"})


@dataclass
class ScrubContext:
    """Per-instance state: patient pseudonym, date offset, and what was done."""

    compiled: CompiledProfile
    pseudonyms: Pseudonymizer
    cleaner: TextCleaner
    found: IdentifyingValues
    patient_pseudonym: str
    date_offset: int
    age_max_years: int
    regions: dict[str, str]
    region: str | None = None
    explain: Callable[[int, str, Rule | None, object, object], None] | None = None
    # The top level's elements as parsed, before anything read them: reading converts an
    # element in place, and a kept one would then be re-encoded instead of copied.
    received: Mapping[int, object] | None = None
    kept: list[int] = field(default_factory=list)  # top-level tags whose value stays
    # the decoded forms set aside by `_restore_received`, for reads after the write
    displaced: dict[int, DataElement] = field(default_factory=dict)


def _vr_of(ds: Dataset, tag: int) -> str:
    raw = ds._dict.get(tag)  # type: ignore[call-overload]
    if raw is not None and raw.VR is not None and raw.VR != "UN":
        return str(raw.VR)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def scrub(ds: Dataset, ctx: ScrubContext, depth: int = 0) -> None:
    """Apply the compiled profile to `ds` in place (and to every nested item)."""
    compiled = ctx.compiled
    private_creators: dict[tuple[int, int], str] | None = None
    kept_blocks: set[tuple[int, int]] = set()
    creator_tags: list[int] = []
    elements = ds._dict
    for tag in list(elements):
        number = int(tag)  # plain int: dict lookups then skip BaseTag.__eq__ (Python-level)
        group = number >> 16
        if group & 1:
            element = number & 0xFFFF
            if 0x0010 <= element <= 0x00FF:
                creator_tags.append(tag)
                continue
            rule = None
            if compiled.keep_private and element >= 0x1000:
                if private_creators is None:
                    private_creators = _creators(ds)
                creator = private_creators.get((group, element >> 8))
                if creator is not None:
                    rule = compiled.private.get((creator, group, element & 0xFF))
                    if rule is None:
                        rule = compiled.private.get((creator, None, element & 0xFF))
            if rule is None:
                _note(ctx, ds, tag, None, removed=True)
                del elements[tag]
                continue
            kept_blocks.add((group, element >> 8))
            _apply(ds, tag, rule, ctx, depth)
            continue
        rule = compiled.rule_for(number)
        if rule is None or group == 0x0002 or (number & 0xFFFF) == 0:
            _note(ctx, ds, tag, None, removed=True)
            del elements[tag]  # the dict itself: Dataset.__delitem__ costs more per call
            continue
        _apply(ds, tag, rule, ctx, depth)
    for creator_tag in creator_tags:
        if (creator_tag >> 16, creator_tag & 0xFF) not in kept_blocks:
            del ds[creator_tag]
    if depth == 0 and ctx.received is not None:
        # after the whole walk: decoding text on the way reads the character set again
        for kept_tag in ctx.kept:
            _restore_received(ds, kept_tag, ctx)


def _creators(ds: Dataset) -> dict[tuple[int, int], str]:
    creators: dict[tuple[int, int], str] = {}
    for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset yields elements
        if tag >> 16 & 1 and 0x0010 <= (tag & 0xFFFF) <= 0x00FF:
            value = ds[tag].value
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            creators[(int(tag) >> 16, int(tag) & 0xFF)] = str(value).strip()
    return creators


def _note(ctx: ScrubContext, ds: Dataset, tag: int, rule: Rule | None, removed: bool) -> None:
    if ctx.explain is not None and removed:
        ctx.explain(tag, _vr_of(ds, tag), rule, _peek(ds, tag), None)


def _peek(ds: Dataset, tag: int) -> object:
    """The value for the explain listing, leaving the element as it was (raw stays raw,
    so that explaining writes exactly what de-identifying writes)."""
    raw = ds._dict.get(tag)  # type: ignore[call-overload]
    try:
        return ds[tag].value
    except Exception:  # noqa: BLE001 - only for the explain listing
        return "<undecodable>"
    finally:
        if raw is not None:
            ds._dict[tag] = raw  # type: ignore[index]


def _apply(ds: Dataset, tag: int, rule: Rule, ctx: ScrubContext, depth: int) -> None:
    op = rule.op
    if op == Op.REMOVE:
        _note(ctx, ds, tag, rule, removed=True)
        del ds._dict[tag]  # type: ignore[arg-type]
        return
    vr = _vr_of(ds, tag)
    if op == Op.KEEP and vr != "SQ":
        if depth == 0:
            ctx.kept.append(tag)
        if ctx.explain is not None:
            value = _peek(ds, tag)
            ctx.explain(tag, vr, rule, value, value)
        return  # raw bytes are written back untouched
    raw = ds._dict[tag]  # type: ignore[index]
    if ctx.explain is None and _replace_raw(ds, tag, raw, vr, rule, ctx):
        return  # new value made from the received bytes, without pydicom's conversion
    if op == Op.CLEAN and _clean_leaves_raw_unchanged(raw, vr, ctx):
        if ctx.explain is not None:
            value = _peek(ds, tag)
            ctx.explain(tag, vr, rule, value, value)
        return  # nothing to clean: the received bytes stay, never decoded
    elem = ds[tag]
    vr = str(elem.VR)
    before = elem.value if ctx.explain is not None else None
    if vr == "SQ":
        if op == Op.EMPTY:
            elem.value = []
        elif op == Op.REMOVE:
            del ds[tag]
        else:
            for item in elem.value:
                scrub(item, ctx, depth + 1)
        if ctx.explain is not None:
            ctx.explain(tag, vr, rule, "<sequence>", "<sequence>" if tag in ds else None)
        return
    if op == Op.EMPTY:
        elem.value = None
    elif op == Op.DUMMY:
        elem.value = dummy_for(vr)
    elif op == Op.UID:
        _remap_uids(elem, ctx)
    elif op == Op.PSEUDONYM:
        _pseudonymize(elem, rule, ctx)
    elif op == Op.SHIFT:
        _shift(elem, ctx)
    elif op == Op.CLEAN:
        if not _clean(elem, ctx):
            if raw is not elem:
                ds._dict[tag] = raw  # type: ignore[index]  # unchanged: keep the received bytes
            if depth == 0:
                ctx.kept.append(tag)
    elif op == Op.AGE:
        _generalize_age(elem, ctx)
    elif op == Op.REGION:
        _generalize_region(elem, ctx)
    if ctx.explain is not None:
        ctx.explain(tag, vr, rule, before, "" if elem.value is None else elem.value)


def _restore_received(ds: Dataset, tag: int, ctx: ScrubContext) -> None:
    """A value kept as it is goes back to its received, still-encoded form (when an earlier
    read converted it), so the writer copies its bytes as for any other kept element."""
    current = ds._dict.get(tag)  # type: ignore[call-overload]
    if ctx.received is None or not isinstance(current, DataElement):
        return
    received = ctx.received.get(tag)
    if isinstance(received, RawDataElement):
        ds._dict[tag] = received  # type: ignore[index]
        ctx.displaced[tag] = current


def reinstate_decoded(ds: Dataset, ctx: ScrubContext) -> None:
    """Once the output is written: the decoded forms back where the received element is
    still in place, so that later reads (facts, the self-check) do not decode it again."""
    assert ctx.received is not None or not ctx.displaced
    for tag, decoded in ctx.displaced.items():
        if ctx.received is not None and ds._dict.get(tag) is ctx.received.get(tag):  # type: ignore[call-overload]
            ds._dict[tag] = decoded  # type: ignore[index]


def _map_values(elem: DataElement, function: Callable[[str], str | None]) -> None:
    value = elem.value
    if value is None or value == "":
        return
    if isinstance(value, MultiValue | list | tuple):
        mapped = [function(str(v)) for v in value]
        elem.value = [m for m in mapped if m is not None]
    else:
        result = function(str(value))
        elem.value = result


def _remap_uids(elem: DataElement, ctx: ScrubContext) -> None:
    if elem.VR != "UI":
        elem.value = None
        return

    _map_values(elem, lambda uid: _remap_one(uid, ctx))


def _remap_one(uid: str, ctx: ScrubContext) -> str:
    uid = uid.strip("\x00 ")
    if not uid or uid in UID_dictionary:
        return uid  # public registry UIDs (classes, syntaxes) identify nothing
    ctx.found.uids.add(uid)
    return ctx.pseudonyms.uid(uid)


def _pseudonymize(elem: DataElement, rule: Rule, ctx: ScrubContext) -> None:
    if rule.keyword in ("PatientID", "PatientName"):
        elem.value = ctx.patient_pseudonym
        return
    if elem.VR == "UI":
        _remap_uids(elem, ctx)
        return
    domain = rule.keyword or "value"
    length = 16 if elem.VR in ("SH", "CS", "AE") else 24

    def pseudo(value: str) -> str | None:
        value = value.strip()
        return ctx.pseudonyms.token(domain, value, length) if value else value

    if elem.VR in ("LO", "SH", "CS", "PN", "AE", "ST", "LT", "UT", "UC"):
        _map_values(elem, pseudo)
    else:
        elem.value = dummy_for(str(elem.VR))


def _shift(elem: DataElement, ctx: ScrubContext) -> None:
    if elem.VR not in DATE_VRS:
        return
    vr = str(elem.VR)
    _map_values(elem, lambda value: _shift_one(value, vr, ctx))


def _shift_one(value: str, vr: str, ctx: ScrubContext) -> str:
    if not value.strip():
        return value
    shifted = (shift_da if vr == "DA" else shift_dt)(value, ctx.date_offset)
    return shifted if shifted is not None else ""  # unparseable dates are not kept


_MULTI_VALUED_TEXT = frozenset({"LO", "SH", "CS", "UC"})
_ASCII_ONLY_VRS = frozenset({"UI", "DA", "DT"})


def _replace_raw(
    ds: Dataset, tag: int, raw: object, vr: str, rule: Rule, ctx: ScrubContext
) -> bool:
    """Build the new element straight from a still-encoded one, when that is simple.

    Converting a raw element through pydicom costs more than the whole operation; UIDs
    and dates are ASCII by definition (PS3.5 6.2), and empty, dummy and patient
    pseudonym values do not depend on the old value at all. Everything else (and any
    doubt: sequences, ambiguous VRs, non-bytes values) takes the general path, which gives
    the same result (a test compares both paths byte for byte).
    """
    if not isinstance(raw, RawDataElement) or vr == "SQ" or " " in vr or vr == "UN":
        return False
    op = rule.op
    new: object
    if op == Op.EMPTY:
        new = None
    elif op == Op.DUMMY and vr != "UI":
        new = dummy_for(vr)
    elif op == Op.PSEUDONYM and rule.keyword in ("PatientID", "PatientName"):
        new = ctx.patient_pseudonym
    elif op in (Op.UID, Op.SHIFT) and vr in _ASCII_ONLY_VRS:
        value = raw.value
        if not isinstance(value, bytes) or not value.isascii():
            return False
        if op == Op.UID and vr != "UI":
            return False
        parts = [part.strip("\x00 ") for part in value.decode("ascii").split("\\")]
        if op == Op.UID:
            mapped = [_remap_one(part, ctx) for part in parts]
        elif vr in ("DA", "DT"):
            mapped = [_shift_one(part, vr, ctx) for part in parts]
        else:
            return False
        new = (mapped[0] or None) if len(mapped) == 1 else mapped
    else:
        return False
    # Not validated: the value is ours (a UID, a date, a pseudonym), and validating costs
    # more than making it (the general path's warnings could also quote a received value).
    ds._dict[tag] = DataElement(  # type: ignore[index]
        tag, vr, new, validation_mode=config.IGNORE
    )
    return True


def _clean_leaves_raw_unchanged(raw: object, vr: str, ctx: ScrubContext) -> bool:
    """True when cleaning would not change a still-encoded ASCII text value.

    Most descriptors (model names, kernels, protocol words) come out of cleaning as they
    went in; checking the ASCII bytes directly spares decoding and re-encoding them. Bytes
    outside ASCII, or the ISO 2022 escape, take the normal path.
    """
    if not isinstance(raw, RawDataElement) or vr not in _TEXT_FOR_CLEAN:
        return False
    value = raw.value
    if not value:
        return True
    if not isinstance(value, bytes) or not value.isascii() or b"\x1b" in value:
        return False
    if vr == "CS" and b"*" in value:
        return False
    text = value.decode("ascii")
    parts = text.split("\\") if vr in _MULTI_VALUED_TEXT else [text]
    limit = MAX_LENGTH.get(vr)
    for part in parts:
        if limit is not None and len(part.strip()) > limit:
            return False
        if ctx.cleaner.clean(part) != part:
            return False
    return True


def _clean(elem: DataElement, ctx: ScrubContext) -> bool:
    """Clean a text element in place; False when nothing had to change."""
    vr = str(elem.VR)
    if vr == "PN":
        elem.value = dummy_for(vr)
        return True
    if vr not in _TEXT_FOR_CLEAN:
        return False
    before = elem.value

    def clean(value: str) -> str:
        cleaned = ctx.cleaner.clean(value)
        if vr == "CS":
            cleaned = cleaned.replace("*", "").upper()  # CS allows only A-Z 0-9 _ space
        return truncate(cleaned, vr)

    _map_values(elem, clean)
    return bool(elem.value != before)


def _generalize_age(elem: DataElement, ctx: ScrubContext) -> None:
    if elem.VR != "AS" or not elem.value:
        return
    years = age_years_from_as(str(elem.value))
    if years is None:
        elem.value = None
    elif years > ctx.age_max_years:
        elem.value = f"{ctx.age_max_years + 1:03d}Y"


def _generalize_region(elem: DataElement, ctx: ScrubContext) -> None:
    value = elem.value
    if not value:
        return
    region = ctx.regions.get(normalize_institution(normalize(str(value))), "UNKNOWN")
    ctx.region = region
    elem.value = truncate(region, str(elem.VR))


__all__ = ["ScrubContext", "reinstate_decoded", "scrub"]
