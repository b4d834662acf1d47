"""Running tesseract: in-process through tesserocr when installed, else its command.

The command is run without a shell and without reading the environment here; the worker
sets OMP_THREAD_LIMIT=1 (tesseract's OpenMP threads make it several times slower on our
machines). The tesserocr wheel bundles a single-threaded libtesseract.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from anonymizer.errors import QuarantineError, QuarantineReason

from .policy import OcrSettings

TESSDATA_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
)


def tessdata_dir(settings: OcrSettings) -> Path | None:
    """The folder holding every language the policy asks for, or None."""
    candidates = [settings.tessdata] if settings.tessdata else list(TESSDATA_DIRS)
    for candidate in candidates:
        folder = Path(candidate)
        if all((folder / f"{lang}.traineddata").is_file() for lang in settings.languages):
            return folder
    return None


# Every page Amana shows tesseract is dark text on white paper (ocr.py, reread.py), so
# tesseract's second try of each doubtful line inverted (light on dark) never helps: it
# cost a fifth of its time on our ultrasound pages (measured, tesseract 5.5, ara+fra+eng).
PAGE_VARIABLES = {"tessedit_do_invert": "0"}
# Annotations are names, IDs, dates, codes and units, not dictionary words: the word lists
# only steer tesseract towards words that are not there (and cost time to search).
LOAD_VARIABLES = {"load_system_dawg": "0", "load_freq_dawg": "0"}


class _Engine:
    """One loaded tesserocr API per (tessdata, languages): loading the models costs more
    than reading a page, so a worker keeps them."""

    _lock = threading.Lock()
    _apis: dict[tuple[str, str], tuple[Any, threading.Lock]] = {}

    @classmethod
    def api(cls, folder: Path, languages: str) -> tuple[Any, threading.Lock] | None:
        try:
            import tesserocr
        except ImportError:
            return None
        key = (str(folder), languages)
        with cls._lock:
            if key not in cls._apis:
                api = tesserocr.PyTessBaseAPI(
                    path=str(folder) + "/",
                    lang=languages,
                    psm=tesserocr.PSM.SPARSE_TEXT,
                    variables=LOAD_VARIABLES,
                )
                for name, value in PAGE_VARIABLES.items():
                    api.SetVariable(name, value)
                cls._apis[key] = (api, threading.Lock())
            return cls._apis[key]


def _tesserocr_tsv(image: Image.Image, settings: OcrSettings) -> str | None:
    folder = tessdata_dir(settings)
    if folder is None:
        if settings.engine == "tesserocr":
            raise QuarantineError(
                QuarantineReason.OCR_UNAVAILABLE, "tesseract language data not found"
            )
        return None
    try:
        loaded = _Engine.api(folder, "+".join(settings.languages))
    except RuntimeError as exc:
        raise QuarantineError(
            QuarantineReason.OCR_UNAVAILABLE, "tesserocr could not load the languages"
        ) from exc
    if loaded is None:
        if settings.engine == "tesserocr":
            raise QuarantineError(QuarantineReason.OCR_UNAVAILABLE, "tesserocr is not installed")
        return None
    api, lock = loaded
    with lock:
        try:
            api.SetImage(image)
            tsv: str = api.GetTSVText(0)
        except RuntimeError as exc:  # a page tesseract refuses must not crash the worker
            raise QuarantineError(
                QuarantineReason.OCR_UNAVAILABLE,
                f"tesseract could not read a {image.width}x{image.height} page",
            ) from exc
    # The API gives rows without tesseract's header line; parse_tsv skips line one.
    return "level\n" + tsv


# Tesseract refuses very tall pages ("Failed to recognize"): a scanned film yields
# hundreds of text bands, laid out one under the other.
MAX_PAGE_HEIGHT = 16000


def run_tesseract(image: Image.Image, settings: OcrSettings) -> str:
    """TSV output of tesseract for `image`; OCR_UNAVAILABLE when it cannot run. A page
    taller than tesseract accepts is read in slices cut along blank rows."""
    if image.height <= MAX_PAGE_HEIGHT:
        return _run_once(image, settings)
    grey = np.asarray(image.convert("L"))
    blank = np.flatnonzero((grey == 255).all(axis=1))
    rows: list[str] = ["level"]
    top = 0
    while top < image.height:
        cut = image.height
        if top + MAX_PAGE_HEIGHT < image.height:
            between = blank[(blank > top) & (blank <= top + MAX_PAGE_HEIGHT)]
            cut = int(between[-1]) if between.size else top + MAX_PAGE_HEIGHT
        tsv = _run_once(image.crop((0, top, image.width, cut)), settings)
        rows.extend(_shifted(line, top) for line in tsv.splitlines()[1:])
        top = cut
    return "\n".join(rows)


def _shifted(line: str, dy: int) -> str:
    cells = line.split("\t")
    if len(cells) >= 12 and cells[7].lstrip("-").isdigit():
        cells[7] = str(int(cells[7]) + dy)
    return "\t".join(cells)


def _run_once(image: Image.Image, settings: OcrSettings) -> str:
    if settings.engine in ("auto", "tesserocr"):
        tsv = _tesserocr_tsv(image, settings)
        if tsv is not None:
            return tsv
    return _cli_tsv(image, settings)


def _cli_tsv(image: Image.Image, settings: OcrSettings) -> str:
    command = shutil.which(settings.command)
    if command is None:
        raise QuarantineError(QuarantineReason.OCR_UNAVAILABLE, "tesseract is not installed")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    args = [
        command,
        "stdin",
        "stdout",
        "--psm",
        "11",  # sparse text: annotations are scattered words, not paragraphs
        "-l",
        "+".join(settings.languages),
        *(
            arg
            for name, value in (PAGE_VARIABLES | LOAD_VARIABLES).items()
            for arg in ("-c", f"{name}={value}")
        ),
        "tsv",
    ]
    if settings.tessdata:
        args[1:1] = ["--tessdata-dir", settings.tessdata]
    try:
        done = subprocess.run(
            args,
            input=buffer.getvalue(),
            capture_output=True,
            timeout=settings.timeout_seconds,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise QuarantineError(
            QuarantineReason.OCR_UNAVAILABLE, f"tesseract failed ({type(exc).__name__})"
        ) from exc
    if done.returncode != 0:
        raise QuarantineError(
            QuarantineReason.OCR_UNAVAILABLE, f"tesseract exited with status {done.returncode}"
        )
    return done.stdout.decode("utf-8", errors="replace")
