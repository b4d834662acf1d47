"""Reading the real test images: where they are, their bytes, their frames as a viewer shows them.

Shared by the acceptance test (`test_real_images.py`) and `benchmarks/real_images.py`.
The data folder is not in the repository: it sits beside it (`../shared/data`), on
developers' machines and in CI.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, pixel_array

from tests.paths import REPO_ROOT

DATA_DIR = REPO_ROOT.parent / "shared" / "data"
TRUTH_FILE = Path(__file__).resolve().parent / "truth.yaml"

Box = tuple[int, int, int, int]


PYDICOM_PREFIX = "pydicom:"


def data_path(relative: str) -> Path:
    """A data file: relative to ../shared/data, or `pydicom:NAME`, a test file that the
    pydicom package ships (no download)."""
    if relative.startswith(PYDICOM_PREFIX):
        from pydicom.data import get_testdata_file

        found = get_testdata_file(relative[len(PYDICOM_PREFIX) :], download=False)
        if not isinstance(found, str):
            raise FileNotFoundError(relative)
        return Path(found)
    return DATA_DIR / relative


def read_bytes(relative: str) -> bytes:
    """The DICOM bytes of a data file (`.zip` and `.xz` hold one DICOM each)."""
    path = data_path(relative)
    if path.suffix == ".xz":
        with lzma.open(path) as handle:
            return handle.read()
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if not name.endswith("/")]
            return archive.read(names[0])
    return path.read_bytes()


def sha1(relative: str) -> str:
    return hashlib.sha1(data_path(relative).read_bytes()).hexdigest()


def parse(data: bytes) -> Dataset:
    return dcmread(io.BytesIO(data), force=True)


def display_frames(ds: Dataset) -> np.ndarray:
    """All frames as a viewer shows them: (frames, rows, columns, 3) uint8 RGB.

    Palette colour goes through its lookup table, YBR is converted to RGB, monochrome is
    stretched from its own minimum to maximum and MONOCHROME1 is inverted.
    """
    array: np.ndarray = pixel_array(ds, as_rgb=True)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    photometric = str(ds.PhotometricInterpretation)
    if photometric == "PALETTE COLOR":
        array = apply_color_lut(array, ds)
    if frames == 1:
        array = array[np.newaxis]
    if array.ndim == 3:  # monochrome
        values = array.astype(np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / max(high - low, 1.0))
        if photometric == "MONOCHROME1":
            scaled = 255.0 - scaled
        grey = scaled.round().astype(np.uint8)
        return np.repeat(grey[..., np.newaxis], 3, axis=3)
    if array.dtype != np.uint8:
        top = float(array.max()) or 1.0
        array = (array.astype(np.float64) * (255.0 / top)).round()
    return array.astype(np.uint8)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of RGB pixels, as float."""
    values = rgb.astype(np.float64)
    return 0.299 * values[..., 0] + 0.587 * values[..., 1] + 0.114 * values[..., 2]


@dataclass(frozen=True)
class Word:
    text: str
    box: Box


@dataclass
class Picture:
    """One labelled picture: its identifying words and the technical words meant to stay."""

    name: str
    size: tuple[int, int]  # columns, rows
    identifying: list[Word] = field(default_factory=list)
    technical: list[Word] = field(default_factory=list)
    same_text_on_every_frame: bool = True


@dataclass(frozen=True)
class RealFile:
    path: str
    sha1: str
    picture: str
    frames: int
    pixels_equal_to: str | None  # another file whose decoded frames are identical


@dataclass
class Truth:
    pictures: dict[str, Picture]
    files: list[RealFile]


def _box(values: list[Any]) -> Box:
    x0, y0, x1, y1 = (int(v) for v in values)
    return (x0, y0, x1, y1)


def _words(rows: list[dict[str, Any]] | None) -> list[Word]:
    return [Word(str(row["text"]), _box(row["box"])) for row in rows or []]


def load_truth(path: Path = TRUTH_FILE) -> Truth:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    pictures = {
        name: Picture(
            name=name,
            size=(int(entry["size"][0]), int(entry["size"][1])),
            identifying=_words(entry.get("identifying")),
            technical=_words(entry.get("technical")),
            same_text_on_every_frame=bool(entry.get("same_text_on_every_frame", True)),
        )
        for name, entry in raw["pictures"].items()
    }
    files = [
        RealFile(
            path=str(entry["path"]),
            sha1=str(entry["sha1"]),
            picture=str(entry["picture"]),
            frames=int(entry.get("frames", 1)),
            pixels_equal_to=entry.get("pixels_equal_to"),
        )
        for entry in raw["files"]
    ]
    return Truth(pictures, files)
