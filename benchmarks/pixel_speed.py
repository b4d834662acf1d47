"""Speed of the pixel step on real images (issue 12), against whole-frame tesseract.

    OMP_THREAD_LIMIT=1 .venv/bin/python -m benchmarks.pixel_speed [--rounds 3]

Prints, in one run and in process CPU seconds (user+sys; the machine is shared, so wall
time says little), median of `--rounds`:

- one real 640x480 ultrasound frame cleaned and verified by the engine as the archive runs
  it (shipped ma-national profile: headers, device rules, OCR, mask, verification,
  re-encoding, writing);
- 90-frame cines made of that frame (one run each, as a multiple of the one frame): the
  frame repeated (native and RLE), repeated with its clock redrawn on frames 10-19 and
  60-69 (bands that change between the frames OCR samples; the new times are drawn inside
  the clock's mask, so they need no reading of their own), and with the image area shifted
  a few pixels from frame to frame (a live image; its colour Doppler then moves over areas
  that are still on the other frames, and under the masks of what OCR read in it);
- each single frame again with detection reading every language of the profile
  (ara+fra+eng, as before ma-national's `detect_languages`), in the same run;
- the baseline of the same run: `tesseract` (the command, ara+fra+eng, psm 11) on the
  whole frame, its child-process CPU, and the same through the loaded in-process binding.

The issue's targets: one frame <= 0.5 s, a 90-frame cine <= 5x one frame.
"""

from __future__ import annotations

import argparse
import copy
import io
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
if __package__ in (None, ""):  # run as `python benchmarks/pixel_speed.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402
from pydicom import dcmread  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402
from pydicom.uid import UID, ExplicitVRLittleEndian, RLELossless  # noqa: E402

from tests.pixels.real.evaluate import make_engine  # noqa: E402
from tests.pixels.real.frames import DATA_DIR, data_path  # noqa: E402

# Real 640x480 ultrasound frames of the labelled set (ATL colour Doppler, Aloka palette).
FRAME_FILES = (
    "samples/pydicom-data/data/US1_UNCI.dcm",
    "samples/pydicom-data/data/gdcm-US-ALOKA-16.dcm",
)
CINE_SOURCE = FRAME_FILES[0]
# A real 512x512 head CT slice (CQ500), examined as a secondary capture would be: bone
# beside black air, where a frame's light-ink floor and the dark panels' floor differ.
CT_SLICE = "samples/pydicom-data/data/693_UNCR.dcm"
CINE_FRAMES = 90
LANGUAGES = "ara+fra+eng"
US_MULTIFRAME = UID("1.2.840.10008.5.1.4.1.1.3.1")
# US1's image area (rows, columns) between its header text and its colour bars: what moves.
LIVE_AREA = (slice(110, 336), slice(48, 592))
# US1's clock, redrawn in the variant whose bands change.
CLOCK_BOX = (276, 38, 362, 56)


def cpu() -> float:
    return time.process_time()


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_cpu(action: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = cpu()
        action()
        times.append(cpu() - start)
    return float(np.median(times))


def frame_of(path: str) -> tuple[Dataset, np.ndarray]:
    ds = dcmread(data_path(path))
    return ds, np.asarray(ds.pixel_array)


def moving(frame: np.ndarray, index: int) -> np.ndarray:
    """`frame` with its image area shifted as a live image moves; the text stays."""
    out = frame.copy()
    area = out[LIVE_AREA]
    out[LIVE_AREA] = np.roll(area, ((index % 5) - 2, (index * 3) % 17 - 8), axis=(0, 1))
    return out


def with_clock(frame: np.ndarray, text: str) -> np.ndarray:
    """`frame` with its clock redrawn as `text` (a band that changes between frames)."""
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = CLOCK_BOX
    draw.rectangle((x0, y0, x1, y1), fill=(0, 0, 0))
    draw.text((x0 + 3, y0 + 1), text, fill=(255, 255, 255), font=ImageFont.load_default(14))
    return np.asarray(image)


def _clock_of(index: int) -> int:
    """Which clock frame `index` shows: other times on two runs of frames that no OCR
    sample falls in (the first, middle and last frames are read), so each run needs a
    reading of its own."""
    if 10 <= index < 20:
        return 1
    if 60 <= index < 70:
        return 2
    return 0


def cine_bytes(source: Dataset, frames: np.ndarray, syntax: str) -> bytes:
    """A multi-frame US instance holding `frames`, with `source`'s header."""
    ds = copy.deepcopy(source)
    ds.SOPClassUID = US_MULTIFRAME
    ds.file_meta.MediaStorageSOPClassUID = US_MULTIFRAME
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.set_pixel_data(frames, "RGB", 8, generate_instance_uid=False)
    ds.NumberOfFrames = len(frames)
    if syntax == "rle":
        ds.compress(RLELossless, frames, generate_instance_uid=False)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def single_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def tesseract_command_cpu(frame: np.ndarray, work: Path) -> float:
    """CPU of the `tesseract` command on the whole frame (what region-less tools do)."""
    path = work / "whole-frame.png"
    Image.fromarray(frame).save(path)
    start = child_cpu()
    subprocess.run(
        ["tesseract", str(path), "stdout", "-l", LANGUAGES, "--psm", "11"],
        capture_output=True,
        check=True,
    )
    return child_cpu() - start


def tesserocr_cpu(frame: np.ndarray) -> float:
    """The whole frame through the loaded in-process binding (no process start)."""
    from anonymizer.pixels import OcrSettings
    from anonymizer.pixels.tesseract import run_tesseract

    settings = OcrSettings(languages=LANGUAGES.split("+"))
    image = Image.fromarray(frame).convert("L")
    run_tesseract(image, settings)  # models loaded before timing
    start = cpu()
    run_tesseract(image, settings)
    return cpu() - start


@contextmanager
def counting_readings() -> Iterator[list[int]]:
    """The frames the cine step gave their own OCR reading (instrumentation only: the
    function is called as the engine calls it)."""
    from anonymizer.pixels import cine

    read: list[int] = []
    original = cine.frame_masks

    def frame_masks(*args: Any, **kwargs: Any) -> cine.FrameMasks:
        found = original(*args, **kwargs)
        read.extend(found.read)
        return found

    cine.frame_masks = frame_masks  # type: ignore[assignment]
    try:
        yield read
    finally:
        cine.frame_masks = original  # type: ignore[assignment]


@dataclass
class Row:
    label: str
    seconds: float
    note: str = ""


class Rows(list[Row]):
    """Rows printed as they are measured (a cine takes a while)."""

    def append(self, row: Row) -> None:
        super().append(row)
        print(f"| {row.label} | {row.seconds:.2f} | {row.note} |", flush=True)


def examined_ct(path: str) -> Dataset:
    """A primary CT slice is not decoded by the engine; the same slice marked DERIVED
    SECONDARY (as a console's re-sent or annotated copy would be) is examined in full."""
    ds = dcmread(data_path(path))
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    return ds


def every_language_engine() -> Any:
    """The national engine with detection reading every profile language, as before the
    third round (ocr.detect_languages unset): the same run's measure of that choice."""
    from anonymizer.engine import Deidentifier, load_profile
    from anonymizer.pseudonyms import key_from_bytes
    from tests.paths import PROFILES_DIR

    # A copy: the loaded profile may be shared with the other engine of the run.
    profile = load_profile("ma-national", PROFILES_DIR).model_copy(deep=True)
    assert profile.pixel is not None
    profile.pixel.ocr.detect_languages = None
    engine = Deidentifier(profile, key_from_bytes(b"real-images-key-0123456789"))
    engine.warm_up()
    return engine


def measure(rounds: int, frames_only: bool = False) -> list[Row]:
    engine = make_engine()
    every_language = every_language_engine()
    rows = Rows()
    one_frame: float | None = None
    with tempfile.TemporaryDirectory(prefix="amana-pixspeed-") as tmp:
        work = Path(tmp)
        ct = examined_ct(CT_SLICE)
        ct_data = single_bytes(ct)
        ct_actions = engine.deidentify(ct_data).facts.pixel_actions
        seconds = median_cpu(partial(engine.deidentify, ct_data), rounds)
        rows.append(Row("693_UNCR (CT 512x512, examined): one slice", seconds, _short(ct_actions)))
        if shutil.which("tesseract"):
            from anonymizer.pixels.ink import to_uint8

            shown = to_uint8(np.asarray(ct.pixel_array), "MONOCHROME2", int(ct.BitsStored))
            base = float(np.median([tesseract_command_cpu(shown, work) for _ in range(rounds)]))
            rows.append(Row("693_UNCR: tesseract command, whole slice (baseline)", base))
        for path in FRAME_FILES:
            ds, frame = frame_of(path)
            data = single_bytes(ds)
            actions = engine.deidentify(data).facts.pixel_actions
            seconds = median_cpu(partial(engine.deidentify, data), rounds)
            name = path.rsplit("/", 1)[-1]
            rows.append(Row(f"{name}: one frame cleaned+verified", seconds, _short(actions)))
            before = median_cpu(partial(every_language.deidentify, data), rounds)
            rows.append(Row(f"{name}: the same, detection in every profile language", before))
            if path == CINE_SOURCE:
                one_frame = seconds
                display = frame
            if shutil.which("tesseract") and frame.ndim == 3:
                base = float(np.median([tesseract_command_cpu(frame, work) for _ in range(rounds)]))
                rows.append(Row(f"{name}: tesseract command, whole frame (baseline)", base))
                rows.append(Row(f"{name}: tesserocr, whole frame (baseline)", tesserocr_cpu(frame)))
        assert one_frame is not None
        if frames_only:
            return rows
        source, _ = frame_of(CINE_SOURCE)
        clocks = [with_clock(display, t) for t in ("+2:09:04", "+2:09:05", "+2:09:06")]
        cines = (
            ("same frame repeated", np.stack([display] * CINE_FRAMES), ("native", "rle")),
            (
                "repeated, clock redrawn on frames 10-19 and 60-69",
                np.stack([clocks[_clock_of(i)] for i in range(CINE_FRAMES)]),
                ("native",),
            ),
            (
                "image area moving, same bands",
                np.stack([moving(display, i) for i in range(CINE_FRAMES)]),
                ("native",),
            ),
        )
        for label, frames, syntaxes in cines:
            for syntax in syntaxes:
                data = cine_bytes(source, frames, syntax)
                with counting_readings() as readings:
                    start = cpu()
                    outcome = engine.deidentify(data)
                    seconds = cpu() - start
                rows.append(
                    Row(
                        f"{CINE_FRAMES}-frame cine, {label} ({syntax})",
                        seconds,
                        f"{seconds / one_frame:.1f}x one frame; OCR readings: {len(readings)}; "
                        + _short(outcome.facts.pixel_actions),
                    )
                )
    return rows


def _short(actions: tuple[str, ...]) -> str:
    return ", ".join(a.split(":")[0] if a.startswith("reencoded") else a for a in actions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="median of this many runs")
    parser.add_argument(
        "--frames-only", action="store_true", help="single frames and the CT slice, no cines"
    )
    args = parser.parse_args(argv)
    if not DATA_DIR.is_dir():
        print(f"data folder not found: {DATA_DIR}", file=sys.stderr)
        return 2
    print_speed(args.rounds, args.frames_only)
    return 0


def print_speed(rounds: int, frames_only: bool = False) -> None:
    print(f"Pixel step speed (CPU s, OMP_THREAD_LIMIT={os.environ.get('OMP_THREAD_LIMIT')})")
    print("| measured | CPU s | note |")
    print("|---|---|---|", flush=True)
    measure(rounds, frames_only)


if __name__ == "__main__":
    raise SystemExit(main())
