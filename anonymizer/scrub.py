"""The header walk: every element at every depth gets the operation its rule says.

Elements the profile does not name are removed; private elements are removed unless kept
by (creator, group, element). Pixel Data and other kept binary values are never decoded:
kept elements stay raw and pydicom writes their bytes back unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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
from anonymizer.vr import DATE_VRS, dummy_for, truncate

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
    removed_sequences: int = field(default=0)


def _vr_of(ds: Dataset, tag: int) -> str:
    raw = ds.get_item(tag)
    if raw is not None and raw.VR is not None:
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
    for tag in list(ds.keys()):
        group = tag >> 16
        if group & 1:
            element = tag & 0xFFFF
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
                del ds[tag]
                continue
            kept_blocks.add((group, element >> 8))
            _apply(ds, tag, rule, ctx, depth)
            continue
        rule = compiled.rule_for(tag)
        if rule is None or group == 0x0002 or (tag & 0xFFFF) == 0:
            _note(ctx, ds, tag, None, removed=True)
            del ds[tag]
            continue
        _apply(ds, tag, rule, ctx, depth)
    for creator_tag in creator_tags:
        if (creator_tag >> 16, creator_tag & 0xFF) not in kept_blocks:
            del ds[creator_tag]


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
    try:
        return ds[tag].value
    except Exception:  # noqa: BLE001 - only for the explain listing
        return "<undecodable>"


def _apply(ds: Dataset, tag: int, rule: Rule, ctx: ScrubContext, depth: int) -> None:
    op = rule.op
    if op == Op.REMOVE:
        _note(ctx, ds, tag, rule, removed=True)
        del ds[tag]
        return
    vr = _vr_of(ds, tag)
    if op == Op.KEEP and vr != "SQ":
        if ctx.explain is not None:
            value = _peek(ds, tag)
            ctx.explain(tag, vr, rule, value, value)
        return  # raw bytes are written back untouched
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
        _clean(elem, ctx)
    elif op == Op.AGE:
        _generalize_age(elem, ctx)
    elif op == Op.REGION:
        _generalize_region(elem, ctx)
    if ctx.explain is not None:
        ctx.explain(tag, vr, rule, before, "" if elem.value is None else elem.value)


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

    def remap(uid: str) -> str:
        uid = uid.strip("\x00 ")
        if not uid or uid in UID_dictionary:
            return uid  # public registry UIDs (classes, syntaxes) identify nothing
        ctx.found.uids.add(uid)
        return ctx.pseudonyms.uid(uid)

    _map_values(elem, remap)


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
    shifter = shift_da if elem.VR == "DA" else shift_dt

    def shift(value: str) -> str | None:
        if not value.strip():
            return value
        shifted = shifter(value, ctx.date_offset)
        return shifted if shifted is not None else ""  # unparseable dates are not kept

    _map_values(elem, shift)


def _clean(elem: DataElement, ctx: ScrubContext) -> None:
    vr = str(elem.VR)
    if vr == "PN":
        elem.value = dummy_for(vr)
        return
    if vr not in _TEXT_FOR_CLEAN:
        return

    def clean(value: str) -> str:
        cleaned = ctx.cleaner.clean(value)
        if vr == "CS":
            cleaned = cleaned.replace("*", "").upper()  # CS allows only A-Z 0-9 _ space
        return truncate(cleaned, vr)

    _map_values(elem, clean)


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


__all__ = ["RawDataElement", "ScrubContext", "scrub"]
