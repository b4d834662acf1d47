"""Steward previews: the engine's own before/after pixels, boxes numbered, the words OCR
read listed beside them; the dry run over HTTP shows only the archived pixels."""

from __future__ import annotations

import base64
import io
import json
import logging
from functools import cache

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.filebase import DicomBytesIO

from anonymizer.engine import Deidentifier, load_profile
from anonymizer.pixels import OcrSettings, PixelPolicy, bind_rules_dir
from anonymizer.pixels.clean import display_frame
from anonymizer.pixels.codec import Frames, decode
from anonymizer.pixels.ocr import Word
from anonymizer.pixels.preview import (
    REREAD_FINDINGS,
    FramePreview,
    InstancePreview,
    preview_instance,
    render_frame,
)
from anonymizer.pixels.preview import legend as preview_legend
from anonymizer.pixels.trace import PixelTrace
from anonymizer.pseudonyms import key_from_bytes
from archive.governance.dry_run import dry_run
from tests.paths import PIXEL_RULES_DIR, PROFILES_DIR

from . import imaging
from .imaging import COLUMNS, ROWS, Text

# A made-up identity drawn in the pixels only: the header names someone else (the
# issue's devices draw what the operator typed, not the header's PatientName).
DRAWN = [
    Text(10, 8, "Ouazzani Zineb", 18, (255, 255, 255)),
    Text(10, 34, "ID 5520417", 16, (255, 255, 255)),
    Text(520, 8, "Gain 45", 16, (255, 255, 255)),  # technical: on the allow-list
]
DRAWN_WORDS = ("Ouazzani", "Zineb", "5520417")


@cache
def _image() -> tuple[np.ndarray, np.ndarray]:
    return imaging.draw(True, seed=5, texts=DRAWN)


def _bytes(image: np.ndarray) -> bytes:
    buffer = DicomBytesIO()
    imaging.dataset([image]).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _engine(policy: PixelPolicy | None = None) -> Deidentifier:
    profile = load_profile("ma-national", PROFILES_DIR)
    if policy is not None:
        profile = profile.model_copy(update={"pixel": policy})
    return Deidentifier(profile, key_from_bytes(b"preview-test-key-0123456789"))


def _panels(picture: FramePreview) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.asarray(Image.open(io.BytesIO(picture.png)).convert("RGB"))
    height, width = ROWS * picture.scale, COLUMNS * picture.scale
    (bx, by), (ax, ay) = picture.panels
    return rgb[by : by + height, bx : bx + width], rgb[ay : ay + height, ax : ax + width]


def _boxes(picture: FramePreview, outcome: str | None, grow: int = 0) -> np.ndarray:
    area = np.zeros((ROWS, COLUMNS), dtype=bool)
    for row in picture.legend:
        if outcome is None or row.outcome == outcome:
            x, y, w, h = row.box
            area[max(0, y - grow) : y + h + grow, max(0, x - grow) : x + w + grow] = True
    return area


@pytest.fixture(scope="module")
def previewed() -> InstancePreview:
    return preview_instance(_engine(), _bytes(_image()[0]), "ward/scan 1.dcm")


@pytest.mark.ocr
def test_preview_lists_the_words_read_in_each_numbered_box(previewed: InstancePreview) -> None:
    """Rule: beside the picture, each numbered box says what found it, the words OCR read
    in it and whether they were masked or kept by the allow-list: the burned-in name and
    ID are listed in masked boxes, the allow-listed "Gain" in a kept one."""
    assert previewed.outcome == "archived"
    assert [p.frame for p in previewed.frames] == [1]
    rows = previewed.frames[0].legend
    assert [r.number for r in rows] == list(range(1, len(rows) + 1))
    masked = {w for r in rows if r.outcome == "masked" for w in r.words}
    for word in DRAWN_WORDS:
        assert word in masked
    kept = [r for r in rows if r.outcome == "kept (allow-list)"]
    assert any("Gain" in r.words for r in kept)
    assert all(r.source == "OCR" for r in rows if set(r.words) & set(DRAWN_WORDS))


@pytest.mark.ocr
def test_preview_panels_are_the_input_and_the_archived_output(
    previewed: InstancePreview,
) -> None:
    """Rule: the "before" panel is the image as received and the "after" panel the pixels
    the archive gets (the engine's own output file, decoded): they differ only inside the
    masked boxes, and do differ there."""
    image, text = _image()
    picture = previewed.frames[0]
    assert picture.scale == 1
    before, after = _panels(picture)
    masked = _boxes(picture, "masked")
    differing = (before != after).any(axis=2)
    assert differing.any()
    assert not (differing & ~masked).any()
    assert (differing & text).sum() > 0.9 * (text & masked).sum()
    # Outlines and numbers aside (drawn near the boxes only), the panels are the input
    # and the archived output.
    drawn = (before != image).any(axis=2)
    assert drawn.any() and not (drawn & ~_boxes(picture, None, grow=18)).any()
    output = _engine().deidentify(_bytes(image)).data
    archived = display_frame(decode(dcmread(io.BytesIO(output)), 2**30), 0)
    assert np.array_equal(after[~drawn], archived[~drawn])


@pytest.mark.ocr
def test_preview_words_stay_out_of_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Rule: the words OCR reads are shown only in the preview picture: nothing the
    preview does logs them, at any level."""
    caplog.set_level(logging.DEBUG)
    preview = preview_instance(_engine(), _bytes(_image()[0]), "scan.dcm")
    assert preview.frames
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    for word in DRAWN_WORDS:
        assert word not in logged


def test_preview_of_a_quarantined_image_shows_why_and_no_archived_pixels() -> None:
    """Rule: when the policy quarantines (here: OCR disabled, no device rule), the preview
    still shows the image as received, an empty "after" panel and the reason."""
    policy = bind_rules_dir(PixelPolicy(rules=[], ocr=OcrSettings(enabled=False)), PIXEL_RULES_DIR)
    image = _image()[0]
    preview = preview_instance(_engine(policy), _bytes(image), "scan.dcm")
    assert preview.outcome == "pixel_policy"
    (picture,) = preview.frames
    before, after = _panels(picture)
    assert np.array_equal(before, image)
    assert not after.any()


def test_preview_of_unreadable_input_is_a_card() -> None:
    """Rule: a file that is not DICOM gets a picture saying so, not an exception."""
    preview = preview_instance(_engine(), b"not a dicom file", "notes.txt")
    assert preview.outcome == "not_dicom"
    assert len(preview.frames) == 1 and preview.frames[0].png.startswith(b"\x89PNG")


def test_preview_of_a_primary_ct_is_empty() -> None:
    """Rule: images the policy does not examine produce no preview (nothing changes)."""
    ds = imaging.dataset([np.zeros((16, 16), np.uint8)], modality="CT")
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    buffer = DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    preview = preview_instance(_engine(), buffer.getvalue(), "ct.dcm")
    assert preview.outcome == "archived" and preview.frames == ()


@pytest.mark.ocr
def test_dry_run_picture_shows_the_masked_pixels_not_the_original() -> None:
    """Rule: the governance dry run (answered over HTTP, off the hospital side) shows the
    pixels as they would be archived: one panel, the burned-in name's glyphs already
    filled, and no word OCR read anywhere in its answer."""
    image, text = _image()
    profile = load_profile("ma-national", PROFILES_DIR)
    (entry,) = dry_run(profile, [("sample.dcm", _bytes(image))])
    assert entry["result"] == "archived"
    picture = np.asarray(
        Image.open(io.BytesIO(base64.b64decode(entry["preview_png"]))).convert("RGB")
    )
    assert picture.shape == image.shape  # the archived frame alone, no "before" beside it
    name = imaging.render_mask((COLUMNS, ROWS), DRAWN[:2])
    assert image[name].max() == 255  # white letters in the input ...
    assert picture[name].max() < 40  # ... filled in the picture
    body = json.dumps(entry)
    for word in DRAWN_WORDS:
        assert word not in body


def test_legend_numbers_every_box_with_its_source_and_fate() -> None:
    """Rule: the legend lists, top to bottom and numbered from 1, each masked area with
    what found it (device rule, OCR, OCR of unread ink) and every word read inside it, each
    allow-listed word left in place, and each word the verification still read with why it
    quarantines; an allow-listed word inside a masked area is listed there (it is masked)."""
    rows, columns = 200, 300
    area = np.zeros((rows, columns), dtype=bool)
    area[10:22, 10:60] = True  # a device rule's rectangle
    area[50:62, 100:160] = True  # an OCR'd line
    area[120:130, 200:260] = True  # unread text-like ink
    trace = PixelTrace(
        examined=True,
        before=Frames(np.zeros((1, rows, columns), np.uint8), "MONOCHROME2", 8),
        rule_rects=[("acme-banner", (10, 10, 50, 12))],
        read={
            0: [
                (Word(102, 51, 25, 10, "Alami", 91.0), "masked"),
                (Word(130, 51, 12, 10, "45", 93.0), "kept"),
                (Word(150, 80, 30, 10, "Gain", 95.0), "kept"),
            ]
        },
        masks=[area],
        reread={0: [(Word(10, 150, 40, 12, "Rachid", 96.0), "remaining")]},
    )
    legend = preview_legend(trace, 0)
    assert [(r.number, r.source, r.words, r.outcome) for r in legend] == [
        (1, "device rule acme-banner", (), "masked"),
        (2, "OCR", ("Alami", "45"), "masked"),
        (3, "OCR", ("Gain",), "kept (allow-list)"),
        (4, "OCR (unread text-like ink)", (), "masked"),
        (5, "reread", ("Rachid",), REREAD_FINDINGS["remaining"]),
    ]
    assert legend[1].box == (100, 50, 60, 12)
    picture = render_frame(trace, 0, None, "scan.dcm", "pixel_text_remaining")
    assert picture.frame == 1 and picture.legend == tuple(legend)
