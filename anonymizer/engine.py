"""The profile engine: one instance in, a de-identified instance (or a quarantine) out.

`Deidentifier` compiles a profile once; `deidentify` is then called per instance. The
steps: parse, gather the instance's identifying values, scrub every element at every
depth, record what was done, optional pixel cleaning, write, and check the written bytes
for any original identifying value before anything is handed back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from anonymizer.dates import age_in_years, age_years_from_as, decade_band, parse_da
from anonymizer.errors import QuarantineError, QuarantineReason
from anonymizer.fastwrite import encode_elements, write_fast
from anonymizer.floor import Floor, floor_category
from anonymizer.floor_check import load_floor
from anonymizer.identity import IdentifyingValues, collect
from anonymizer.integrity import check_pixel_integrity
from anonymizer.outcome import InstanceFacts, Outcome, PseudonymKey
from anonymizer.output import new_file_meta, record_method, write_part10
from anonymizer.profile_loader import ProfileError, load_profile_file
from anonymizer.profile_model import Option, Profile
from anonymizer.pseudonyms import Pseudonymizer, key_from_bytes
from anonymizer.rules import CompiledProfile, Op, Rule, compile_profile
from anonymizer.scrub import ScrubContext, reinstate_decoded, scrub
from anonymizer.selfcheck import forgive_retained, self_check
from anonymizer.textclean import TextCleaner

if TYPE_CHECKING:  # the pixel machinery loads with the first examined image
    from anonymizer.pixels.trace import PixelTrace

__all__ = [
    "Deidentifier",
    "ProfileError",
    "Profile",
    "key_from_bytes",
    "load_profile",
    "ExplainRow",
]

# Never turned into a quarantine: the process itself is being stopped.
_FATAL = (KeyboardInterrupt, SystemExit, GeneratorExit)
REQUIRED = (
    (0x00080016, "SOPClassUID"),
    (0x00080018, "SOPInstanceUID"),
    (0x0020000D, "StudyInstanceUID"),
    (0x0020000E, "SeriesInstanceUID"),
)
# (tag, VR, rule or None when the profile does not name it, value before, value after)
ExplainRow = tuple[int, str, Rule | None, object, object]


@dataclass(frozen=True)
class SampledSlice:
    """A slice whose series is sampled, as the archive pipeline keys it: no PHI (the series
    key is the keyed pseudonym of its UID; the study UID is the one the catalog will show)."""

    series_key: str
    study_uid: str | None
    instance_number: int | None


def load_profile(name_or_path: str, profiles_dir: Path) -> Profile:
    """A profile by name (`ma-national` -> profiles_dir/ma-national.yaml) or by path."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        return load_profile_file(candidate)
    file = profiles_dir / f"{name_or_path}.yaml"
    if not file.is_file():
        raise ProfileError(file, None, f"no profile named {name_or_path!r} in {profiles_dir}")
    return load_profile_file(file)


class Deidentifier:
    """A compiled profile plus a key; safe to call from one thread at a time."""

    def __init__(self, profile: Profile, key: PseudonymKey, floor: Floor | None = None) -> None:
        self.profile = profile
        self.key = key
        self.compiled: CompiledProfile = compile_profile(profile)
        if floor is None:
            # The floor's values are looked for in every output whatever the profile says
            # (even a profile that was never through the loader's floor check).
            source = Path(profile.source_file).parent if profile.source_file else None
            floor = load_floor(source)
        self._floor = {tag: floor_category(tag) for tag in floor.tags}
        self.pseudonyms = Pseudonymizer(key)
        shift = profile.pseudonyms.date_shift_days
        self._shift_range = (shift.min, shift.max)
        self._linkage = profile.pseudonyms.linkage
        self._region_names = set(profile.regions.values())
        # Both writers give the same bytes (tested); the switch exists for that test.
        self.fast_write = True
        self._record_cache: dict[tuple[object, bool], dict[int, bytes]] = {}

    def warm_up(self) -> None:
        """Load now what the first instance would otherwise pay for (the pixel machinery)."""
        if self.profile.pixel is not None:
            from anonymizer.pixels import prepare_pixels

            prepare_pixels(self.profile.pixel)

    def deidentify(
        self,
        data: bytes,
        *,
        pixel_trace: PixelTrace | None = None,
        pixel_mode: str = "auto",
    ) -> Outcome:
        """`pixel_trace` records the pixel step's words and masks (steward previews only).
        `pixel_mode` (anonymizer.pixels.PixelMode) is what the instance's series asks of
        the pixel step beyond the header's decision: a screen or the full examination."""
        return self._run(data, explain=None, pixel_trace=pixel_trace, pixel_mode=pixel_mode)

    @property
    def samples_series(self) -> bool:
        """Whether this profile samples primary series (pixel `primary_series: sampled`)."""
        pixel = self.profile.pixel
        return pixel is not None and pixel.primary_series == "sampled"

    def sampled_slice(self, data: bytes) -> SampledSlice | None:
        """The series of a slice whose pixels this profile samples by series (pixel
        `primary_series: sampled`), or None for any other instance (and for input that
        does not parse: `deidentify` says why). Reads the header only."""
        pixel = self.profile.pixel
        if pixel is None or not self.samples_series:
            return None
        try:
            # Large values (Pixel Data) are left unread: only their presence matters here.
            ds = dcmread(BytesIO(data), defer_size=4096, force=True)
            from anonymizer.pixels import sampled_slice

            if not sampled_slice(ds, pixel):
                return None
            series_uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
            study_uid = str(ds.get("StudyInstanceUID", "") or "").strip()
            if not series_uid or not study_uid:
                return None
            return SampledSlice(
                series_key=self.pseudonyms.uid(series_uid),
                study_uid=self._output_uid(0x0020000D, study_uid),
                instance_number=_int(ds, "InstanceNumber"),
            )
        except _FATAL:
            raise
        except BaseException:  # noqa: B036 - odd input: `deidentify` quarantines it
            return None

    def reexamine(self, archived: bytes) -> tuple[bytes, tuple[str, ...]]:
        """An instance this profile already de-identified and archived undecoded, whose
        series turned out to carry text: its pixels examined in full (masked, verified).
        Returns the new file and the pixel actions. The original's identifying values are
        gone with its header, so what is masked is all text the policy masks, not only
        those values (the national profile masks every word off the allow-list anyway)."""
        pixel = self.profile.pixel
        if pixel is None:
            raise QuarantineError(QuarantineReason.PIXEL_POLICY, "the profile examines no pixels")
        from anonymizer.pixels import PixelMode, clean_pixels

        ds = _parse(archived)
        try:
            actions = clean_pixels(_parse(archived), ds, pixel, (), mode=PixelMode.EXAMINE)
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            return write_part10(ds), actions
        except QuarantineError:
            raise
        except _FATAL:
            raise
        except BaseException as exc:  # noqa: B036 - native decoders panic outside Exception
            raise QuarantineError(
                QuarantineReason.PIXEL_DECODE_FAILED,
                f"the pixel step failed ({type(exc).__name__})",
            ) from exc

    def _output_uid(self, tag: int, original: str) -> str | None:
        """The value the output will carry for a UID attribute, when it is the original's
        pseudonym or the original kept; None when the profile does something else."""
        rule = self.compiled.exact.get(tag)
        if rule is not None and rule.op == Op.UID:
            return self.pseudonyms.uid(original)
        if rule is not None and rule.op == Op.KEEP:
            return original
        return None

    def explain(
        self, data: bytes, *, pixel_trace: PixelTrace | None = None
    ) -> tuple[list[ExplainRow], Outcome | QuarantineError]:
        """Every attribute's before -> action -> after, and the outcome (for stewards)."""
        rows: list[ExplainRow] = []

        def record(tag: int, vr: str, rule: Rule | None, before: object, after: object) -> None:
            rows.append((tag, vr, rule, before, after))

        try:
            outcome: Outcome | QuarantineError = self._run(data, record, pixel_trace)
        except QuarantineError as exc:
            outcome = exc
        return rows, outcome

    def _run(
        self,
        data: bytes,
        explain: Callable[[int, str, Rule | None, object, object], None] | None,
        pixel_trace: PixelTrace | None = None,
        pixel_mode: str = "auto",
    ) -> Outcome:
        ds = _parse(data)
        # before any read converts an element (see ScrubContext); plain int keys
        received: dict[int, object] = {int(tag): elem for tag, elem in ds._dict.items()}
        try:
            for tag, keyword in REQUIRED:
                if not _present(ds, tag, keyword):
                    raise QuarantineError(
                        QuarantineReason.MISSING_ATTRIBUTE, f"{keyword} is missing or empty"
                    )
            transfer_syntax = _transfer_syntax(ds)
            check_pixel_integrity(ds, encapsulated=UID(transfer_syntax).is_encapsulated)
            original = None
            if self.profile.pixel is not None:
                from anonymizer.pixels import examination_needed

                # The untouched copy is needed only for images whose pixels are examined
                # (rules and masks read the original header); most CT/MR are not.
                if pixel_mode != "auto" or examination_needed(ds, self.profile.pixel):
                    original = _parse(data)
            return self._deidentify(
                ds, data, transfer_syntax, original, explain, pixel_trace, pixel_mode, received
            )
        except QuarantineError:
            raise
        except _FATAL:
            raise
        except BaseException as exc:  # noqa: B036 - odd input ends in quarantine, not a crash
            raise QuarantineError(
                QuarantineReason.UNREADABLE,
                f"cannot de-identify this instance ({type(exc).__name__})",
            ) from exc

    def _deidentify(
        self,
        ds: Dataset,
        source: bytes,
        transfer_syntax: str,
        original: Dataset | None,
        explain: Callable[[int, str, Rule | None, object, object], None] | None,
        pixel_trace: PixelTrace | None = None,
        pixel_mode: str = "auto",
        received: Mapping[int, object] | None = None,
    ) -> Outcome:
        profile = self.profile
        found = IdentifyingValues()
        collect(ds, self.compiled, found, self._floor)
        found.drop_synthetic(self._region_names)
        linkage = _linkage_values(ds, self._linkage)
        patient = self.pseudonyms.patient(linkage)
        offset = self.pseudonyms.date_offset(linkage, *self._shift_range)
        birth_band, computed_age = _patient_age_facts(ds, profile)
        ctx = ScrubContext(
            compiled=self.compiled,
            pseudonyms=self.pseudonyms,
            cleaner=TextCleaner(found),
            found=found,
            patient_pseudonym=patient,
            date_offset=offset,
            age_max_years=profile.generalize.age_max_years,
            regions=profile.regions,
            explain=explain,
            received=received,
        )
        scrub(ds, ctx)
        if computed_age is not None and "PatientAge" not in ds and _keeps_age(self.compiled):
            ds.PatientAge = computed_age
        for tag, keyword in ((0x00100010, "PatientName"), (0x00100020, "PatientID")):
            rule = self.compiled.exact.get(tag)
            if rule is not None and rule.op == Op.PSEUDONYM and not ds.get(keyword):
                # Type 2 and what links studies: present even when the sender left it out
                setattr(ds, keyword, patient)
        forgive_retained(found, ds, self._region_names)
        shifted = _shifts_dates(self.compiled)
        ds.file_meta = new_file_meta(ds, transfer_syntax)
        pixel_actions: tuple[str, ...] = ()
        if profile.pixel is not None:
            from anonymizer.pixels import PixelMode, clean_pixels

            # After the header scrub, before the self-check; it may change the pixels and
            # the transfer syntax of `ds` (never of `original`).
            try:
                pixel_actions = clean_pixels(
                    original,
                    ds,
                    profile.pixel,
                    found.all_values(),
                    trace=pixel_trace,
                    mode=PixelMode(pixel_mode),
                )
            except QuarantineError:
                raise
            except _FATAL:
                raise
            except BaseException as exc:  # noqa: B036 - native decoders panic (pyo3) outside Exception
                raise QuarantineError(
                    QuarantineReason.PIXEL_DECODE_FAILED,
                    f"the pixel step failed ({type(exc).__name__})",
                ) from exc
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        out_syntax = str(ds.file_meta.TransferSyntaxUID)
        output: bytes | None = None
        if self.fast_write:
            # What-was-done elements are the same for every instance: encoded once.
            records = self._records(ds.original_encoding, shifted)
            for tag in records:
                ds._dict.pop(tag, None)  # type: ignore[call-overload]
            output = write_fast(ds, source, out_syntax, records)
        if output is None:
            if not UID(out_syntax).is_transfer_syntax:
                raise QuarantineError(
                    QuarantineReason.UNSUPPORTED_TRANSFER_SYNTAX,
                    f"transfer syntax {out_syntax} cannot be written here",
                )
            record_method(ds, profile, self.key.key_id, shifted)
            output = write_part10(ds)
        reinstate_decoded(ds, ctx)
        self_check(output, ds, found, self._records(ds.original_encoding, shifted))
        return Outcome(output, _facts(ds, profile, self.key, patient, birth_band, ctx.region,
                                      pixel_actions))

    def _records(
        self, encoding: tuple[bool | None, bool | None], shifted: bool
    ) -> dict[int, bytes]:
        cache_key = (encoding, shifted)
        cached = self._record_cache.get(cache_key)
        if cached is None:
            template = Dataset()
            record_method(template, self.profile, self.key.key_id, shifted)
            implicit, little = encoding
            cached = encode_elements(template, bool(implicit), little is not False)
            self._record_cache[cache_key] = cached
        return cached


def _parse(data: bytes) -> Dataset:
    try:
        return dcmread(BytesIO(data))
    except InvalidDicomError:
        pass
    except Exception as exc:  # noqa: BLE001 - any parser failure means: cannot read
        raise QuarantineError(
            QuarantineReason.UNREADABLE, "the DICOM file cannot be parsed"
        ) from exc
    # No preamble/DICM: accept a bare dataset only if it parses as one.
    try:
        ds = dcmread(BytesIO(data), force=True)
        if len(ds) == 0 or "SOPClassUID" not in ds:
            raise InvalidDicomError("no dataset")
        return ds
    except Exception as exc:  # noqa: BLE001
        raise QuarantineError(QuarantineReason.NOT_DICOM, "the input is not a DICOM file") from exc


def _present(ds: Dataset, tag: int, keyword: str) -> bool:
    """Whether a required attribute has a value. Still-encoded plain bytes are looked at
    as they are: converting them here would make the scrub take its general path for
    these UIDs instead of mapping them from their bytes."""
    raw = ds._dict.get(tag)  # type: ignore[call-overload]
    value = raw.value if isinstance(raw, RawDataElement) else None
    if (isinstance(value, bytes) and value.isascii() and b"\\" not in value
            and value.strip(b"\x00 \t\n\r\x0b\x0c")):
        return True  # one non-blank ASCII value (anything else: pydicom decides, as before)
    return bool(str(ds.get(keyword, "") or "").strip())


def _transfer_syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if syntax:
        return syntax
    encoding = ds.original_encoding
    if encoding == (True, True):
        return ImplicitVRLittleEndian
    if encoding == (False, False):
        return ExplicitVRBigEndian
    return ExplicitVRLittleEndian


def _linkage_values(ds: Dataset, keywords: tuple[str, ...]) -> list[str]:
    values = [str(ds.get(keyword, "") or "").strip() for keyword in keywords]
    if not any(values):
        # No patient identifier: each study is its own pseudonymous patient, never a
        # shared "empty" patient that would merge strangers.
        return ["no-linkage", str(ds.StudyInstanceUID)]
    return values


def _patient_age_facts(ds: Dataset, profile: Profile) -> tuple[str | None, str | None]:
    """(birth-decade band, computed PatientAge) from the original, before dates go."""
    if Option.RETAIN_PATIENT_CHARACTERISTICS not in profile.options:
        return None, None
    birth = parse_da(str(ds.get("PatientBirthDate", "") or ""))
    study = parse_da(str(ds.get("StudyDate", "") or ""))
    limit = profile.generalize.age_max_years
    age_value = str(ds.get("PatientAge", "") or "")
    years = age_years_from_as(age_value) if age_value else None
    computed: str | None = None
    if birth is not None and study is not None and study >= birth:
        years_computed = age_in_years(birth, study)
        years = years if years is not None else years_computed
        computed = f"{min(years_computed, limit + 1):03d}Y"
    if birth is None or (years is not None and years > limit):
        return None, computed
    return decade_band(birth.year), computed


def _keeps_age(compiled: CompiledProfile) -> bool:
    rule = compiled.exact.get(0x00101010)
    return rule is not None and rule.op in (Op.KEEP, Op.AGE)


def _shifts_dates(compiled: CompiledProfile) -> bool:
    rule = compiled.exact.get(0x00080020)
    return rule is not None and rule.op == Op.SHIFT


@cache
def _tag(keyword: str) -> BaseTag:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return BaseTag(tag)


def _get(ds: Dataset, keyword: str) -> Any:
    """`ds.get(keyword)` without its per-call keyword look-up (a dozen per instance)."""
    tag = _tag(keyword)
    return ds[tag].value if tag in ds._dict else None


def _text(ds: Dataset, keyword: str) -> str | None:
    value = _get(ds, keyword)
    if value is None or value == "":
        return None
    return str(value)


def _int(ds: Dataset, keyword: str) -> int | None:
    value = _get(ds, keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _facts(
    ds: Dataset,
    profile: Profile,
    key: PseudonymKey,
    patient: str,
    birth_band: str | None,
    region: str | None,
    pixel_actions: tuple[str, ...],
) -> InstanceFacts:
    return InstanceFacts(
        patient_pseudonym=patient,
        study_uid=str(ds.StudyInstanceUID),
        series_uid=str(ds.SeriesInstanceUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        sop_class_uid=str(ds.SOPClassUID),
        transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
        profile_name=profile.name,
        profile_version=profile.version,
        key_id=key.key_id,
        modality=_text(ds, "Modality"),
        study_date=_text(ds, "StudyDate"),
        study_description=_text(ds, "StudyDescription"),
        series_description=_text(ds, "SeriesDescription"),
        series_number=_int(ds, "SeriesNumber"),
        instance_number=_int(ds, "InstanceNumber"),
        body_part=_text(ds, "BodyPartExamined"),
        # Read from the de-identified dataset: whatever the profile left of them.
        manufacturer=_text(ds, "Manufacturer"),
        model=_text(ds, "ManufacturerModelName"),
        patient_sex=_text(ds, "PatientSex"),
        patient_age=_text(ds, "PatientAge"),
        patient_birth_year_band=birth_band,
        region=region,
        pixel_actions=pixel_actions,
    )
