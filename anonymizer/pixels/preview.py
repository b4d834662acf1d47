"""Before/after pictures of what the pixel step does to an image, for data stewards.

`preview_instance` runs the engine on one file exactly as the archive does, with a
`PixelTrace` (trace.py) recording what it saw, and renders each frame OCR read (or the
first frame, for device rules alone): the image as received ("before"), the pixels the
archive gets ("after", decoded from the engine's own output file), every box numbered on
both, and beside them a legend: the box's number, what found it (device rule, OCR, the
verification's reread), the words OCR read in it, and whether it was masked or kept by
the allow-list.

The pictures and the legend hold the patient's own burned-in text: they are for a steward
on the hospital side, written to files only they can read, never logged or sent. Nothing
here logs, and no exception raised here carries a word.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom import dcmread

from anonymizer.errors import QuarantineError

from . import codec, mask
from .clean import display_frame
from .ocr import Word
from .rules import Rect
from .trace import PixelTrace

if TYPE_CHECKING:
    from anonymizer.engine import Deidentifier
    from anonymizer.outcome import Outcome

MASKED = (255, 64, 64)
KEPT = (64, 200, 64)
REREAD = (255, 170, 0)
_BACKGROUND = (32, 32, 32)
_INK = (235, 235, 235)
_GAP = 12
_MARGIN = 10
_MIN_PANEL_ROWS = 320  # small images are enlarged so numbers and outlines stay legible
_LEGEND_CHARS = 90  # a legend line is cut here in the picture (not in `legend`)

REREAD_FINDINGS = {
    "identifying": "still read after masking (an identifying value): quarantine",
    "forbidden_text": "still read after masking (no text allowed here): quarantine",
    "remaining": "still read after masking (not on the allow-list): quarantine",
}


@dataclass(frozen=True)
class LegendRow:
    """One numbered box of a preview: where it is (frame pixels), what found it, the
    words OCR read in it and what became of it."""

    number: int
    box: Rect
    source: str  # "device rule <id>", "OCR", "OCR (unread text-like ink)", "reread"
    words: tuple[str, ...]
    outcome: str  # "masked", "kept (allow-list)", "still read after masking: ..."


@dataclass(frozen=True)
class FramePreview:
    """The picture of one frame (1-based `frame`) and its legend."""

    frame: int
    png: bytes
    legend: tuple[LegendRow, ...]
    # Where the before and after panels are in the picture (left, top), and the factor
    # small images are enlarged by.
    panels: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))
    scale: int = 1


@dataclass(frozen=True)
class InstancePreview:
    """Pictures of one input (none when the image is not examined: nothing changes), and
    the engine's answer they picture: the output to archive, or the quarantine."""

    outcome: str  # "archived" or the quarantine reason code
    frames: tuple[FramePreview, ...]
    archived: Outcome | None = None
    quarantine: QuarantineError | None = None


def preview_instance(engine: Deidentifier, data: bytes, title: str) -> InstancePreview:
    """Run `engine` on `data` as the archive would and picture what its pixel step did.

    `title` (the input's name) heads each picture. A quarantined input is pictured too,
    with its masked pixels when masking ran, and the reason instead of an archived image;
    an input that cannot be parsed gets a card with the reason.
    """
    trace = PixelTrace()
    archived: Outcome | None = None
    quarantine: QuarantineError | None = None
    try:
        archived = engine.deidentify(data, pixel_trace=trace)
        outcome = "archived"
    except QuarantineError as exc:
        quarantine, outcome = exc, exc.reason.value
    if not trace.examined:
        pictures: tuple[FramePreview, ...] = ()
        if quarantine is not None:
            card = _card(title, f"not archived: {outcome} (pixels not examined)")
            pictures = (FramePreview(1, card, ()),)
        return InstancePreview(outcome, pictures, archived, quarantine)
    policy = engine.profile.pixel
    limit = (policy.max_decoded_mb if policy is not None else 512) * 2**20
    try:
        after = _decoded(archived.data, limit) if archived is not None else None
        pictures = tuple(
            render_frame(trace, index, after, title, outcome) for index in frames_shown(trace)
        )
    except Exception as exc:  # noqa: BLE001 - the engine's answer stands without its picture
        card = _card(title, f"{outcome}; the picture could not be drawn ({type(exc).__name__})")
        pictures = (FramePreview(1, card, ()),)
    return InstancePreview(outcome, pictures, archived, quarantine)


def frames_shown(trace: PixelTrace) -> list[int]:
    """The frames OCR read and those the verification quarantined on; the first frame
    when device rules alone masked (every frame got the same boxes)."""
    return sorted(set(trace.read) | set(trace.reread)) or [0]


def legend(trace: PixelTrace, frame: int) -> list[LegendRow]:
    """The numbered boxes of `frame`: masked areas (each connected area of the mask, with
    the words read in it), allow-listed words left in place, and words the verification
    still read (top to bottom)."""
    rows: list[tuple[Rect, str, tuple[str, ...], str]] = []
    words = trace.read.get(frame, [])
    area = trace.mask_of(frame)
    if area is not None and area.any():
        for rect in mask.boxes_of(area):
            inside = tuple(w.text for w, _ in words if _centre_in(w, rect))
            rules = sorted({rule for rule, r in trace.rule_rects if _overlap(r, rect)})
            sources = [f"device rule {rule}" for rule in rules]
            if inside or not rules:
                sources.append("OCR" if inside else "OCR (unread text-like ink)")
            rows.append((rect, " + ".join(sources), inside, "masked"))
    for word, fate in words:
        if fate == "kept" and not _centre_masked(word, area):
            rows.append((_rect(word), "OCR", (word.text,), "kept (allow-list)"))
    for word, finding in trace.reread.get(frame, []):
        rows.append((_rect(word), "reread", (word.text,), REREAD_FINDINGS[finding]))
    rows.sort(key=lambda row: (row[0][1], row[0][0]))
    return [LegendRow(n, *row) for n, row in enumerate(rows, start=1)]


def render_frame(
    trace: PixelTrace, frame: int, after: codec.Frames | None, title: str, outcome: str
) -> FramePreview:
    """One frame's picture: before and after side by side, labelled, boxes numbered on
    both, the legend beside them."""
    rows = legend(trace, frame)
    assert trace.before is not None  # an examined image was decoded
    before = _rgb(trace.before, frame)
    if outcome == "archived" and after is not None:
        after_image: Image.Image | None = _rgb(after, frame)
        after_label = "after: as archived"
    elif outcome == "archived":
        after_image, after_label = None, "after: the archived file cannot be decoded here"
    elif trace.masked is not None:
        after_image = _rgb(trace.masked, frame)
        after_label = f"after masking: NOT archived ({outcome})"
    else:
        after_image, after_label = None, f"after: NOT archived ({outcome})"
    count = trace.before.count
    heading = f"{title} - frame {frame + 1} of {count} - {outcome}"
    png, panels, scale = _compose(before, after_image, after_label, rows, heading)
    return FramePreview(frame + 1, png, tuple(rows), panels, scale)


def masked_picture(trace: PixelTrace, output: bytes, max_decoded_mb: int) -> bytes | None:
    """The first frame of an archived output with its masked areas outlined, and no
    words: what a dry run over HTTP may show (the original pixels and the words OCR read
    stay on the hospital side). None when the image was not examined."""
    if not trace.examined:
        return None
    after = _decoded(output, max_decoded_mb * 2**20)
    if after is None:
        return None
    picture = _rgb(after, 0)
    area = trace.mask_of(0)
    pen = ImageDraw.Draw(picture)
    for x, y, w, h in mask.boxes_of(area) if area is not None else []:
        pen.rectangle((x, y, x + w - 1, y + h - 1), outline=MASKED)
    return _png(picture)


def _decoded(output: bytes, limit: int) -> codec.Frames | None:
    try:
        return codec.decode(dcmread(io.BytesIO(output)), limit)
    except (QuarantineError, ValueError, RuntimeError):
        return None


def _rgb(frames: codec.Frames, index: int) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(display_frame(frames, index))).convert("RGB")


def _rect(word: Word) -> Rect:
    return (word.x, word.y, word.width, word.height)


def _centre_in(word: Word, rect: Rect) -> bool:
    x, y, w, h = rect
    cx, cy = word.x + word.width // 2, word.y + word.height // 2
    return x <= cx < x + w and y <= cy < y + h


def _centre_masked(word: Word, area: np.ndarray | None) -> bool:
    if area is None:
        return False
    cy, cx = word.y + word.height // 2, word.x + word.width // 2
    return 0 <= cy < area.shape[0] and 0 <= cx < area.shape[1] and bool(area[cy, cx])


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:  # DejaVu has Latin and Arabic letters; Pillow's own font is the fallback
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size)


def _colour(outcome: str) -> tuple[int, int, int]:
    if outcome == "masked":
        return MASKED
    return KEPT if outcome.startswith("kept") else REREAD


def _legend_line(row: LegendRow) -> str:
    words = " ".join(row.words) if row.words else "(no words read)"
    line = f"{row.number}. {row.source} - {row.outcome}: {words}"
    return line if len(line) <= _LEGEND_CHARS else line[: _LEGEND_CHARS - 3] + "..."


def _compose(
    before: Image.Image,
    after: Image.Image | None,
    after_label: str,
    rows: Sequence[LegendRow],
    heading: str,
) -> tuple[bytes, tuple[tuple[int, int], tuple[int, int]], int]:
    scale = max(1, -(-_MIN_PANEL_ROWS // before.height)) if before.height < _MIN_PANEL_ROWS else 1
    size = (before.width * scale, before.height * scale)
    panels = [before.resize(size, Image.Resampling.NEAREST)]
    if after is not None:
        panels.append(after.resize(size, Image.Resampling.NEAREST))
    else:
        panels.append(Image.new("RGB", size, (0, 0, 0)))
    text_font, small = _font(15), _font(12)
    lines = ["boxes (number, found by, outcome, words read):"] + [_legend_line(r) for r in rows]
    if not rows:
        lines.append("(no box)")
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    legend_width = max(int(measure.textlength(line, font=text_font)) for line in lines)
    line_height = 20
    top = 2 * line_height + _MARGIN + 4
    width = 2 * size[0] + _GAP + 2 * _MARGIN + _GAP + legend_width
    height = max(top + size[1], top + line_height * len(lines)) + _MARGIN
    canvas = Image.new("RGB", (width, height), _BACKGROUND)
    pen = ImageDraw.Draw(canvas)
    pen.text((_MARGIN, 4), heading, fill=_INK, font=text_font)
    lefts = [_MARGIN, _MARGIN + size[0] + _GAP]
    labels = ["before: as received", after_label]
    for left, panel, label in zip(lefts, panels, labels, strict=True):
        pen.text((left, 4 + line_height), label, fill=_INK, font=text_font)
        canvas.paste(panel, (left, top))
        for row in rows:
            _outline(pen, row, (left, top, size[0]), scale, small)
    legend_left = lefts[1] + size[0] + _GAP
    for number, line in enumerate(lines):
        colour = _INK if number == 0 else _colour(rows[number - 1].outcome) if rows else _INK
        pen.text((legend_left, top + number * line_height), line, fill=colour, font=text_font)
    return _png(canvas), ((lefts[0], top), (lefts[1], top)), scale


def _outline(
    pen: ImageDraw.ImageDraw,
    row: LegendRow,
    panel: tuple[int, int, int],
    scale: int,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    """The box's outline and number, drawn the same way on both panels (so the panels
    differ only where pixels were masked)."""
    left, top, panel_width = panel
    x, y, w, h = row.box
    colour = _colour(row.outcome)
    x0, y0 = left + x * scale, top + y * scale
    pen.rectangle((x0, y0, x0 + w * scale - 1, y0 + h * scale - 1), outline=colour)
    label = str(row.number)
    label_width = int(pen.textlength(label, font=font)) + 4
    # The number sits just above the box's corner, inside the panel.
    lx = max(left, min(x0, left + panel_width - label_width - 1))
    ly = max(top, y0 - 15)
    pen.rectangle((lx, ly, lx + label_width, ly + 14), fill=colour)
    pen.text((lx + 2, ly), label, fill=(0, 0, 0), font=font)


def _card(title: str, message: str) -> bytes:
    """A picture without pixels, for inputs that cannot be shown."""
    font = _font(15)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = 2 * _MARGIN + max(int(measure.textlength(t, font=font)) for t in (title, message))
    canvas = Image.new("RGB", (max(width, 200), 60), _BACKGROUND)
    pen = ImageDraw.Draw(canvas)
    pen.text((_MARGIN, 8), title, fill=_INK, font=font)
    pen.text((_MARGIN, 32), message, fill=REREAD, font=font)
    return _png(canvas)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
