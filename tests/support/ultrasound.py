"""Ultrasound-like frames with burned-in text, and the exact pixels that text covers: the
one drawing used by the pixel tests and by the benchmark corpus."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage as ndi

from tests.support.identities import ARABIC_NAME, INSTITUTION, Identity

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")  # fonts-dejavu-core: has Arabic glyphs
FONT = FONT_DIR / "DejaVuSans.ttf"
FONT_BOLD = FONT_DIR / "DejaVuSans-Bold.ttf"

ROWS, COLUMNS = 480, 640


@dataclass(frozen=True)
class Text:
    x: int
    y: int
    text: str
    size: int
    colour: tuple[int, int, int]
    bold: bool = False


@cache
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_BOLD if bold else FONT), size)


def burned_in_texts(who: Identity, *, device_annotations: bool = False) -> list[Text]:
    """`who`'s identity as an ultrasound machine burns it in: several sizes and colours (a
    faint grey too), both scripts, on the black border and over the image. Device
    annotations (probe, gain) are text that is not identifying."""
    texts = [
        Text(8, 6, who.display_name, 14, (255, 255, 255)),
        Text(8, 26, f"ID {who.patient_id}", 11, (255, 255, 0)),
        Text(470, 6, who.birth_date_shown, 12, (0, 255, 0)),
        Text(440, 446, INSTITUTION, 16, (210, 210, 210), bold=True),
        Text(290, 200, ARABIC_NAME, 20, (255, 255, 255)),
        Text(8, 440, who.given, 13, (120, 120, 120)),  # low contrast on the border
    ]
    if device_annotations:
        texts += [
            Text(520, 60, "C5-2 4.0MHz", 11, (200, 200, 200)),
            Text(520, 78, "Gain 52 FR 28", 11, (200, 200, 200)),
        ]
    return texts


def background(seed: int, brightness: float = 30.0) -> np.ndarray:
    """An ultrasound-like sector of speckle on black, (rows, columns) uint8; bright
    speckle (brightness 90) is smoothed like a real probe's."""
    rng = np.random.default_rng(seed)
    speckle = rng.rayleigh(brightness, (ROWS, COLUMNS))
    if brightness > 30:
        speckle = ndi.gaussian_filter(speckle, 1.0) * 1.6
    speckle = speckle.clip(0, 255)
    yy, xx = np.mgrid[:ROWS, :COLUMNS]
    sector = ((xx - 320) ** 2 + (yy - 40) ** 2 < 420**2) & (np.abs(xx - 320) < (yy - 40) * 0.9)
    return np.where(sector, speckle, 0).astype(np.uint8)


def draw(
    color: bool,
    seed: int,
    texts: list[Text],
    shift: tuple[int, int] = (0, 0),
    brightness: float = 30.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(image, text mask): a frame with `texts` drawn (RGB when `color`, else grey), and
    every pixel the text touched."""
    image = Image.fromarray(background(seed, brightness)).convert("RGB")
    truth = Image.new("L", (COLUMNS, ROWS), 0)
    pen, truth_pen = ImageDraw.Draw(image), ImageDraw.Draw(truth)
    for item in texts:
        position = (item.x + shift[0], item.y + shift[1])
        pen.text(position, item.text, font=font(item.size, item.bold), fill=item.colour)
        truth_pen.text(position, item.text, font=font(item.size, item.bold), fill=255)
    array = np.asarray(image) if color else np.asarray(image.convert("L"))
    return array.copy(), np.asarray(truth) > 0


def render_mask(size: tuple[int, int], texts: list[Text]) -> np.ndarray:
    """The pixels `texts` cover on a (width, height) canvas, without drawing an image."""
    truth = Image.new("L", size, 0)
    pen = ImageDraw.Draw(truth)
    for item in texts:
        pen.text((item.x, item.y), item.text, font=font(item.size, item.bold), fill=255)
    return np.asarray(truth) > 0
