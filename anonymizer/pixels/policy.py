"""The `pixel:` section of a profile (PS3.15 Clean Pixel Data Option).

Every field has a default so that `PixelPolicy()` is the safe policy: examine every image
kind known to carry burned-in text, mask known devices' regions, OCR the rest, verify, and
quarantine whatever cannot be cleaned with certainty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

# Image kinds that routinely carry burned-in demographics.
DEFAULT_MODALITIES = [
    "US",  # ultrasound
    "IVUS",
    "SC",  # secondary capture (screenshots, scanned film, reports)
    "OT",
    "DOC",
    "XA",  # angiography / fluoroscopy
    "RF",
    "ES",  # endoscopy and other visible-light photography
    "XC",
    "GM",
    "SM",
    "OP",
    "DG",
    # Projection radiography, all of it: side markers, technologist initials, and names or
    # dates on images re-sent from film or another PACS are drawn into the pixels, and the
    # headers cannot tell which images have them ("for presentation" is nearly all).
    "DX",
    "CR",
    "MG",
    "IO",
    "PX",
    "BMD",  # bone densitometry: the scan page carries the patient's details
]

DEFAULT_SOP_CLASSES = [
    "1.2.840.10008.5.1.4.1.1.6.1",  # US Image
    "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume
    "1.2.840.10008.5.1.4.1.1.3.1",  # US Multi-frame Image
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
    "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    "1.2.840.10008.5.1.4.1.1.12.1",  # X-Ray Angiographic
    "1.2.840.10008.5.1.4.1.1.12.1.1",  # Enhanced XA
    "1.2.840.10008.5.1.4.1.1.12.2",  # X-Ray Radiofluoroscopic
    "1.2.840.10008.5.1.4.1.1.12.2.1",  # Enhanced XRF
    "1.2.840.10008.5.1.4.1.1.77.1.1",  # VL Endoscopic
    "1.2.840.10008.5.1.4.1.1.77.1.2",  # VL Microscopic
    "1.2.840.10008.5.1.4.1.1.77.1.3",  # VL Slide-Coordinates Microscopic
    "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL Photographic
    "1.2.840.10008.5.1.4.1.1.77.1.5.1",  # Ophthalmic Photography 8 Bit
    "1.2.840.10008.5.1.4.1.1.77.1.5.2",  # Ophthalmic Photography 16 Bit
    "1.2.840.10008.5.1.4.1.1.77.1.6",  # VL Whole Slide Microscopy
    "1.2.840.10008.5.1.4.1.1.6",  # US Image (retired)
    "1.2.840.10008.5.1.4.1.1.3",  # US Multi-frame Image (retired)
    "1.2.840.10008.5.1.4.1.1.12.3",  # XA Bi-plane (retired)
    "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic
    "1.2.840.10008.5.1.4.1.1.77.1.2.1",  # Video Microscopic
    "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic
    "1.2.840.10008.5.1.4.1.1.77.1.7",  # Dermoscopic Photography
    "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography
    "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray for Presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # Digital X-Ray for Processing
    "1.2.840.10008.5.1.4.1.1.1.2",  # Digital Mammography for Presentation
    "1.2.840.10008.5.1.4.1.1.1.2.1",  # Digital Mammography for Processing
    "1.2.840.10008.5.1.4.1.1.1.3",  # Digital Intra-Oral X-Ray for Presentation
    "1.2.840.10008.5.1.4.1.1.1.3.1",  # Digital Intra-Oral X-Ray for Processing
    "1.2.840.10008.5.1.4.1.1.481.1",  # RT Image (portal images carry field labels)
]

# Any value of the multi-valued Image Type: a derived or secondary picture, a screen
# capture, or a projection view (localizer, scout), where scanners print the patient's
# name and birth date. OTHER is a vendor's "none of the defined kinds": not trusted.
DEFAULT_IMAGE_TYPES = [
    "SECONDARY",
    "DERIVED",
    "SCREEN SAVE",
    "SAVE",
    "LOCALIZER",
    "SCOUT",
    "OTHER",
]

# Objects whose pixels are computed values or labels, never rendered by a device: they
# are DERIVED by definition, and "masking" text-like shapes in them would damage labels.
DEFAULT_NOT_EXAMINED_SOP_CLASSES = [
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
    "1.2.840.10008.5.1.4.1.1.30",  # Parametric Map
    "1.2.840.10008.5.1.4.1.1.481.2",  # RT Dose
]

TextMode = Literal["all", "sensitive"]

LosslessSyntax = Literal["jpeg2000_lossless", "rle_lossless", "explicit_vr_little_endian"]


class OcrSettings(BaseModel):
    """How text is searched for when no device rule describes the image."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # Tesseract language packs, joined with '+'; ma-national uses ara, fra, eng.
    languages: list[str] = Field(default_factory=lambda: ["eng"])
    # The languages detection reads with, when fewer than `languages` find every script
    # the images carry (each language tried on every line is most of detection's cost);
    # None reads with `languages`. Verification's first reading (detection's kind of ink
    # again, at lower thresholds) uses them too; its independent reading always reads
    # with every one of `languages`.
    detect_languages: list[str] | None = Field(default=None, min_length=1)
    # Pixels added on every side of a found word before it is filled.
    margin: int = Field(default=4, ge=0, le=64)
    # Largest enlargement of small text (bands are scaled to ~22 px high; small annotation
    # text is missed at native size, measured).
    upscale: float = Field(default=2.0, ge=1.0, le=4.0)
    # Local contrast (0-255 scale) above which a pixel may be ink; lower finds fainter text.
    min_contrast: int = Field(default=70, ge=10, le=250)
    # Colour saturation (max - min channel) above which a pixel may be coloured ink.
    min_chroma: int = Field(default=80, ge=10, le=250)
    # Verification looks harder than detection: it uses these lower thresholds.
    verify_min_contrast: int = Field(default=45, ge=10, le=250)
    verify_min_chroma: int = Field(default=50, ge=10, le=250)
    # Also mask lines of text-like ink on plain areas (borders, bars, paper) that OCR
    # could not read: writing in a font tesseract does not know is still writing.
    mask_unread_lines: bool = True
    # Frames OCR'd in a multi-frame image to find static text (first, last, evenly between).
    sample_frames: int = Field(default=3, ge=1, le=64)
    # tesserocr keeps the models loaded in the worker (0.1 s per page instead of 0.5 s for
    # a tesseract process); "auto" uses it when installed and falls back to the command.
    engine: Literal["auto", "tesserocr", "cli"] = "auto"
    # Tesseract executable for the "cli" engine; the worker sets OMP_THREAD_LIMIT=1.
    command: str = "tesseract"
    # Folder with the *.traineddata files; None looks in the Debian/Ubuntu locations.
    tessdata: str | None = None
    timeout_seconds: float = Field(default=120.0, gt=0)

    def for_detection(self) -> OcrSettings:
        """These settings with detection's languages (the same object when they are the
        verification's too)."""
        if self.detect_languages is None or self.detect_languages == self.languages:
            return self
        return self.model_copy(update={"languages": list(self.detect_languages)})


class PixelPolicy(BaseModel):
    """Which images are examined for burned-in text, and what is done to them."""

    model_config = ConfigDict(extra="forbid")

    # -- which images are examined (any one sign is enough) --------------------------
    modalities: list[str] = Field(default_factory=lambda: list(DEFAULT_MODALITIES))
    sop_classes: list[str] = Field(default_factory=lambda: list(DEFAULT_SOP_CLASSES))
    # Values looked for in Image Type (any value, case-insensitive).
    image_types: list[str] = Field(default_factory=lambda: list(DEFAULT_IMAGE_TYPES))
    # Burned In Annotation YES always means examine; a missing or NO flag is not trusted
    # for the kinds above, and never makes an image skip examination.
    # SOP classes whose pixels are labels or computed values: not examined (unless
    # flagged Burned In Annotation YES).
    not_examined_sop_classes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_NOT_EXAMINED_SOP_CLASSES)
    )
    # Primary CT/MR/PT/NM slices (selection.py: not examined from their header). With
    # "sampled", the archive pipeline holds a series' slices until it stops growing, decodes
    # and screens its first, middle and last slice, and examines every slice of a series
    # where that found text (sampling.py, docs/pixels.md "Sampling primary series").
    # "unexamined" leaves them undecoded; files anonymized one by one are always so.
    primary_series: Literal["unexamined", "sampled"] = "unexamined"

    # -- device rules -------------------------------------------------------------------
    # Rule files under profiles/pixel/ (names without .yaml), applied in order.
    rules: list[str] = Field(default_factory=lambda: ["ctp-device-regions", "ctp-examine-signs"])
    # After a device rule masked its regions, also OCR the image for text elsewhere.
    ocr_after_rule: bool = False

    # -- OCR and verification -----------------------------------------------------------
    ocr: OcrSettings = Field(default_factory=OcrSettings)
    # Which text is masked. "all": every word read, unless each word of it is on the
    # allow-list (identity can be written in any form, so only the list decides what
    # stays). "sensitive": only words matching the instance's identifying values or shaped
    # like dates, times and IDs, for research profiles that accept that risk.
    text: TextMode = "all"
    # The steward's allow-list of technical words (a file under profiles/pixel/, without
    # .yaml); None allows nothing, so every word read is masked.
    allowlist: str | None = None
    # OCR the masked frames again, also with a preprocessing of its own: any word left
    # that is not allow-listed, or text matching the instance's identifying values,
    # quarantines it. Burned In Annotation becomes NO only after this check passed.
    verify: bool = True
    # Modalities in which any text read after masking quarantines the image.
    forbid_text_in: list[str] = Field(default_factory=list)

    # -- output -------------------------------------------------------------------------
    # Syntax used when masked pixels cannot go back into their received syntax (lossy
    # or without an encoder here); lossless so no new loss is added.
    reencode_as: LosslessSyntax = "jpeg2000_lossless"
    # Overlay planes (60xx) may hold text: "remove" drops them; "clean" keeps them (ROI
    # outlines are training labels) with OCR'd words erased, removing any plane that cannot
    # be cleaned with certainty. Curves (50xx) are always removed.
    overlays: Literal["remove", "clean"] = "remove"
    # Larger images (decoded) are quarantined as too_large rather than risk the worker.
    max_decoded_mb: int = Field(default=2048, gt=0)
    # Icon thumbnails are a small copy of the image, burned-in text included.
    remove_icon_images: bool = True

    # Directory holding the rule files; bound by `bind_rules_dir`, not written in YAML.
    _rules_dir: Path | None = PrivateAttr(default=None)

    @property
    def rules_dir(self) -> Path | None:
        return self._rules_dir


def bind_rules_dir(policy: PixelPolicy, rules_dir: Path) -> PixelPolicy:
    """A copy of `policy` whose rule names resolve in `rules_dir` (profiles/pixel)."""
    bound = policy.model_copy(deep=True)
    bound._rules_dir = Path(rules_dir)
    return bound
