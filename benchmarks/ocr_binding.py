"""OCR binding: seconds per call for tesserocr, the tesseract command and pytesseract.

    OMP_THREAD_LIMIT=1 .venv/bin/python -m benchmarks.ocr_binding [--frames 8]

The three read the same images with the same settings (languages ara+fra+eng, page
segmentation 11 = sparse text, TSV out): 640x480 ultrasound frames with a made-up identity
burned in (benchmarks/corpus.py), whole at native size, and their top text band upscaled 2x
(the kind of crop amana's OCR sends). Each binding is warmed up once, then timed per call;
prints the median and the ratio to tesserocr measured in the same run, and how many words
each read, so a faster binding that reads less does not pass unnoticed.

pytesseract is timed only when it is importable (it is not a dependency of amana).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# One tesseract thread per process (what amana's workers use); before libtesseract loads.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")
if __package__ in (None, ""):  # run as `python benchmarks/ocr_binding.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402

from anonymizer.pixels import OcrSettings  # noqa: E402
from anonymizer.pixels.tesseract import _cli_tsv, _tesserocr_tsv, tessdata_dir  # noqa: E402
from tests.support.corpus import us_frame  # noqa: E402

LANGUAGES = ["ara", "fra", "eng"]
Reader = Callable[[Image.Image], str]


def _words(tsv: str) -> int:
    """Words with text in a TSV page (level 5 rows)."""
    count = 0
    for line in tsv.splitlines()[1:]:
        cells = line.split("\t")
        if len(cells) >= 12 and cells[0] == "5" and cells[11].strip():
            count += 1
    return count


def readers() -> dict[str, Reader]:
    tesserocr_settings = OcrSettings(languages=LANGUAGES, engine="tesserocr")
    cli_settings = OcrSettings(languages=LANGUAGES, engine="cli")

    def with_tesserocr(image: Image.Image) -> str:
        tsv = _tesserocr_tsv(image, tesserocr_settings)
        assert tsv is not None
        return tsv

    found: dict[str, Reader] = {
        "tesserocr (in process)": with_tesserocr,
        "tesseract command": lambda image: _cli_tsv(image, cli_settings),
    }
    try:
        import pytesseract
    except ImportError:
        return found
    folder = tessdata_dir(cli_settings)

    def with_pytesseract(image: Image.Image) -> str:
        config = f"--psm 11 --tessdata-dir {folder}" if folder else "--psm 11"
        text: str = pytesseract.image_to_data(image, lang="+".join(LANGUAGES), config=config)
        return text

    found["pytesseract"] = with_pytesseract
    return found


def images(count: int) -> dict[str, list[Image.Image]]:
    frames = [Image.fromarray(us_frame(study, seed=study)).convert("L") for study in range(count)]
    bands = [f.crop((0, 0, f.width, 60)).resize((f.width * 2, 120)) for f in frames]
    return {"whole 640x480 frame": frames, "text band 1280x120": bands}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args(argv)
    print(f"OMP_THREAD_LIMIT={os.environ.get('OMP_THREAD_LIMIT')}, {args.frames} frames, "
          f"languages {'+'.join(LANGUAGES)}, psm 11")
    bindings = readers()
    for kind, pictures in images(args.frames).items():
        print(f"\n{kind}")
        baseline: float | None = None
        for name, read in bindings.items():
            read(pictures[0])  # models loaded, process caches warm
            seconds: list[float] = []
            words = 0
            for picture in pictures:
                start = time.perf_counter()
                tsv = read(picture)
                seconds.append(time.perf_counter() - start)
                words += _words(tsv)
            median = statistics.median(seconds)
            baseline = baseline if baseline is not None else median
            print(f"  {name:24s} {median:.3f} s/call (median), x{median / baseline:.2f} "
                  f"tesserocr's time, {words} words read")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
