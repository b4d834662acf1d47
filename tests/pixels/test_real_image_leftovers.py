"""What the real images taught: a label touching a colour bar is read at its own size, and
a reading whose box is too wide for its characters is not kept by the allow-list."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from anonymizer.pixels import OcrSettings, PixelPolicy, bind_rules_dir, mask
from anonymizer.pixels.allowlist import allowlist_for
from anonymizer.pixels.ocr import Word, read_frame
from tests.paths import PIXEL_RULES_DIR

from .imaging import font

SHIPPED = allowlist_for(bind_rules_dir(PixelPolicy(allowlist="allowlist"), PIXEL_RULES_DIR))
SETTINGS = OcrSettings(languages=["eng"])


def _label_on_colour_bar() -> np.ndarray:
    """A US power-Doppler scale as the GE US1 image draws it: a small white label with a
    colour bar right under it (2 pixels apart), on black."""
    image = Image.new("RGB", (200, 160), (0, 0, 0))
    pen = ImageDraw.Draw(image)
    pen.text((10, 20), "PWR", font=font(13, True), fill=(255, 255, 255))
    for row in range(35, 100):  # orange to dark red, top to bottom
        shade = 255 - 3 * (row - 35)
        pen.line((12, row, 40, row), fill=(shade, shade // 2, 0))
    return np.asarray(image).copy()


@pytest.mark.ocr
def test_a_label_touching_a_colour_bar_is_read() -> None:
    """Rule: a word whose band also holds a much taller shape (a colour bar it touches) is
    read at its letters' size too, not only shrunk to the big shape's: the allow-listed
    label is read and kept, so verification does not find it left unread."""
    image = _label_on_colour_bar()
    text = read_frame(
        image, SETTINGS, min_contrast=SETTINGS.min_contrast, min_chroma=SETTINGS.min_chroma
    )
    labels = [w for w in text.words if w.y < 35 and w.text.strip(".,:;") == "PWR"]
    assert labels, [(w.x, w.y) for w in text.words]
    _, kept = mask.decide(labels, (), SHIPPED, "all")
    assert kept == labels


@pytest.mark.parametrize(
    ("text", "width", "height"),
    [("5", 87, 16), ("15", 88, 16), ("222", 71, 15), ('205"', 92, 16), ("0", 87, 16)],
)
def test_a_short_reading_over_a_wide_box_is_masked(text: str, width: int, height: int) -> None:
    """Rule: an allow-listed reading whose box is wider than its characters can be (one
    character per box height, plus one) is a misreading of something else (a blurred word
    of a scanned film read as "5"): it is masked, not kept."""
    word = Word(100, 50, width, height, text, 90.0)
    assert SHIPPED.allowed([word]) == [True]
    masked, kept = mask.decide([word], (), SHIPPED, "all")
    assert masked == [word] and kept == []


@pytest.mark.parametrize(
    ("text", "width", "height"),
    [("23cm", 48, 15), ("18.5", 47, 15), ("CINE", 39, 14), ("4", 33, 39), ("MI", 24, 17)],
)
def test_technical_words_of_their_own_width_are_kept(text: str, width: int, height: int) -> None:
    """Rule: allow-listed words whose box fits their characters (as read on the real
    images) stay."""
    word = Word(100, 50, width, height, text, 90.0)
    masked, kept = mask.decide([word], (), SHIPPED, "all")
    assert kept == [word] and masked == []
