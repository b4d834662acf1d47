"""Scoring the engine's output on the labelled real images (truth.yaml).

The rule, for every identifying word of every labelled file (frame by frame when the text
is the same on every frame):

- the instance is QUARANTINED (it never leaves the pipeline), or
- the word is **masked**: let `ink` be the pixels of the word's box in the input whose
  luma differs from the box's median luma by at least t = max(3, min(INK_CONTRAST, half
  the box's luma range)) (the glyphs; faint text counts, windowing would show it); a
  glyph pixel is *left* when the output keeps it (luma within min(UNCHANGED, t/2) of the
  input) and it still stands out from the output box's median luma by t. The word is
  masked when at most MAX_LEFT (10%) of its ink is left;
- and tesseract on the output reads none of it: neither on the whole frame (a word read
  whose box overlaps the truth box) nor on the box's crop (grown by CROP_MARGIN, stretched
  to full contrast, enlarged CROP_SCALE times). Words are compared normalized (upper case,
  letters and digits only); a read matches when it contains the word, or is a piece of
  it at least max(3, 60%) as long. Words of 3 characters or fewer must be read whole.

Technical words survive when at least 90% of their ink is unchanged in the output (on
archived files; a quarantined file keeps nothing). They are counted apart as
*allow-listed* (the shipped allow-list accepts the word as labelled, so it is meant to
stay) or not (a preset name such as "MSCSKEL": masked by design in `text: all`).
Neither the words nor the boxes' contents are ever printed: leaks are reported by file,
frame and box index.

    OMP_THREAD_LIMIT=1 .venv/bin/python -m tests.pixels.real.evaluate [PATH-PART ...]

prints word recall and technical-word survival over the labelled files (or those whose
path contains one of the PATH-PARTs).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from anonymizer.engine import Deidentifier, load_profile
from anonymizer.errors import QuarantineError
from anonymizer.pixels.allowlist import AllowList, allowlist_for
from anonymizer.pixels.ocr import Word as OcrWord
from anonymizer.pseudonyms import key_from_bytes
from tests.paths import PROFILES_DIR

from .frames import (
    Box,
    Picture,
    RealFile,
    Truth,
    Word,
    display_frames,
    luminance,
    parse,
    read_bytes,
)

INK_CONTRAST = 24.0
UNCHANGED = 8.0
MAX_LEFT = 0.10
TECH_KEPT = 0.90
CROP_MARGIN = 6
CROP_SCALE = 3
FULL_FRAME_SAMPLES = 3  # full-frame OCR on the first, a middle and the last frame
TESSDATA_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
)


def make_engine() -> Deidentifier:
    """The engine as the archive runs it: the shipped ma-national profile, a made-up key."""
    engine = Deidentifier(
        load_profile("ma-national", PROFILES_DIR), key_from_bytes(b"real-images-key-0123456789")
    )
    engine.warm_up()
    return engine


def normalize(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def matches(word: str, read: str) -> bool:
    """Whether an OCR read gives away `word` (both raw; compared normalized)."""
    truth, token = normalize(word), normalize(read)
    if not truth or not token:
        return False
    if len(truth) <= 3:
        return token == truth or (len(token) <= 6 and truth in token)
    if truth in token:
        return True
    return len(token) >= max(3, int(0.6 * len(truth) + 0.5)) and token in truth


class Reader:
    """Tesseract (in process) for checking: English, sparse text on frames, a line on crops."""

    def __init__(self) -> None:
        import tesserocr

        folder = next((d for d in TESSDATA_DIRS if (Path(d) / "eng.traineddata").is_file()), None)
        if folder is None:
            raise RuntimeError("tesseract English data not found")
        self._tesserocr = tesserocr
        self._sparse = tesserocr.PyTessBaseAPI(
            path=folder + "/", lang="eng", psm=tesserocr.PSM.SPARSE_TEXT
        )
        self._line = tesserocr.PyTessBaseAPI(
            path=folder + "/", lang="eng", psm=tesserocr.PSM.SINGLE_LINE
        )
        self._crop_cache: dict[str, list[str]] = {}

    def words(self, image: Image.Image, line: bool = False) -> list[tuple[str, Box]]:
        api = self._line if line else self._sparse
        api.SetImage(image)
        api.Recognize()
        level = self._tesserocr.RIL.WORD
        found: list[tuple[str, Box]] = []
        iterator = api.GetIterator()
        if iterator is None:
            return found
        for item in self._tesserocr.iterate_level(iterator, level):
            try:
                text = item.GetUTF8Text(level)
            except RuntimeError:  # a blank page: tesserocr raises rather than return ""
                continue
            box = item.BoundingBox(level)
            if text and text.strip() and box:
                found.append((text.strip(), (box[0], box[1], box[2], box[3])))
        return found

    def frame(self, rgb: np.ndarray) -> list[tuple[str, Box]]:
        return self.words(Image.fromarray(rgb).convert("L"))

    def crop(self, rgb: np.ndarray, box: Box) -> list[str]:
        x0, y0, x1, y1 = box
        rows, columns = rgb.shape[:2]
        part = rgb[
            max(0, y0 - CROP_MARGIN) : min(rows, y1 + CROP_MARGIN),
            max(0, x0 - CROP_MARGIN) : min(columns, x1 + CROP_MARGIN),
        ]
        digest = hashlib.sha1(part.tobytes() + str(part.shape).encode()).hexdigest()
        if digest not in self._crop_cache:
            grey = ImageOps.autocontrast(Image.fromarray(np.ascontiguousarray(part)).convert("L"))
            grey = grey.resize(
                (grey.width * CROP_SCALE, grey.height * CROP_SCALE), Image.Resampling.LANCZOS
            )
            reads = [text for text, _ in self.words(grey, line=True)]
            reads += [text for text, _ in self.words(ImageOps.invert(grey), line=True)]
            self._crop_cache[digest] = reads
        return self._crop_cache[digest]


def overlaps(a: Box, b: Box, grow: int = 3) -> bool:
    return not (
        a[2] + grow <= b[0] or b[2] + grow <= a[0] or a[3] + grow <= b[1] or b[3] + grow <= a[1]
    )


def ink(lum_in: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray, float]:
    """The box's input luma, its glyph pixels and the contrast that defines them."""
    x0, y0, x1, y1 = box
    part = lum_in[y0:y1, x0:x1]
    spread = float(part.max() - part.min()) if part.size else 0.0
    contrast = max(3.0, min(INK_CONTRAST, spread / 2))
    return part, np.abs(part - np.median(part)) >= contrast, contrast


def left_fraction(lum_in: np.ndarray, lum_out: np.ndarray, box: Box) -> float:
    """The share of the word's glyph pixels still there and still standing out (0..1)."""
    part_in, glyphs, contrast = ink(lum_in, box)
    if not glyphs.any():
        return 0.0
    x0, y0, x1, y1 = box
    part_out = lum_out[y0:y1, x0:x1]
    kept = np.abs(part_out - part_in) <= min(UNCHANGED, contrast / 2)
    standing = np.abs(part_out - np.median(part_out)) >= contrast
    return float((glyphs & kept & standing).sum()) / float(glyphs.sum())


def kept_fraction(lum_in: np.ndarray, lum_out: np.ndarray, box: Box) -> float:
    part_in, glyphs, contrast = ink(lum_in, box)
    if not glyphs.any():
        return 1.0
    x0, y0, x1, y1 = box
    kept = np.abs(lum_out[y0:y1, x0:x1] - part_in) <= min(UNCHANGED, contrast / 2)
    return float((glyphs & kept).sum()) / float(glyphs.sum())


@dataclass
class Leak:
    frame: int
    box: int
    why: str  # "unmasked" (pixels) or "ocr-frame" / "ocr-crop" (read back)


@dataclass
class FileResult:
    path: str
    picture: str
    frames: int
    status: str  # archived | quarantined | crashed
    detail: str  # quarantine reason or exception type; never PHI
    seconds: float
    identifying: int  # words scored (one per box, not per frame)
    masked: int  # words masked on every checked frame and read on none
    leaks: list[Leak] = field(default_factory=list)
    technical: int = 0
    technical_kept: int = 0
    # Of the technical words, those the allow-list accepts as labelled, and how many of
    # them survive.
    allowlisted: int = 0
    allowlisted_kept: int = 0
    reused_ocr_from: str | None = None

    @property
    def leaked_boxes(self) -> list[int]:
        return sorted({leak.box for leak in self.leaks})


def _checked_frames(picture: Picture, frames: int) -> list[int]:
    return list(range(frames)) if picture.same_text_on_every_frame else [0]


def _ocr_frames(frames: int) -> list[int]:
    if frames <= FULL_FRAME_SAMPLES:
        return list(range(frames))
    return sorted({0, frames // 2, frames - 1})


class Evaluator:
    """Runs each labelled file through the engine once and scores it against the truth."""

    def __init__(self, truth: Truth, engine: Deidentifier | None = None) -> None:
        self.truth = truth
        self.engine = engine or make_engine()
        self.reader = Reader()
        self._inputs: dict[str, np.ndarray] = {}
        self._outputs: dict[str, np.ndarray | None] = {}
        self._ocr_leaks: dict[str, list[Leak]] = {}
        self.results: dict[str, FileResult] = {}
        policy = self.engine.profile.pixel
        self.allow = allowlist_for(policy) if policy is not None else AllowList()

    def input_frames(self, path: str) -> np.ndarray:
        if path not in self._inputs:
            self._inputs[path] = display_frames(parse(read_bytes(path)))
        return self._inputs[path]

    def evaluate(self, real: RealFile) -> FileResult:
        if real.path in self.results:
            return self.results[real.path]
        picture = self.truth.pictures[real.picture]
        data = read_bytes(real.path)
        frames_in = self.input_frames(real.path)
        result = FileResult(
            path=real.path,
            picture=real.picture,
            frames=int(frames_in.shape[0]),
            status="archived",
            detail="",
            seconds=0.0,
            identifying=len(picture.identifying),
            masked=0,
            technical=len(picture.technical),
            allowlisted=sum(allowlisted(self.allow, picture.technical)),
        )
        start = time.perf_counter()
        output: bytes | None = None
        try:
            output = self.engine.deidentify(data).data
        except QuarantineError as error:
            result.status, result.detail = "quarantined", error.reason.value
        except Exception as error:  # noqa: BLE001 - any other failure is a crash, reported
            result.status, result.detail = "crashed", type(error).__name__
        result.seconds = time.perf_counter() - start
        if output is None:
            self._outputs[real.path] = None
            result.masked = result.identifying if result.status == "quarantined" else 0
            self.results[real.path] = result
            return result
        try:
            frames_out = display_frames(parse(output))
        except Exception as error:  # noqa: BLE001 - an unreadable output is a crash
            result.status, result.detail = "crashed", f"output:{type(error).__name__}"
            self.results[real.path] = result
            return result
        self._outputs[real.path] = frames_out
        if frames_out.shape != frames_in.shape:
            result.status, result.detail = "crashed", "output-shape"
            self.results[real.path] = result
            return result
        leaks: list[Leak] = []
        lum_in = [luminance(frame) for frame in frames_in]
        lum_out = [luminance(frame) for frame in frames_out]
        for k in _checked_frames(picture, result.frames):
            for index, word in enumerate(picture.identifying):
                if left_fraction(lum_in[k], lum_out[k], word.box) > MAX_LEFT:
                    leaks.append(Leak(k, index, "unmasked"))
        # OCR: reuse the read-back of a file whose decoded input and engine output are equal
        twin = real.pixels_equal_to
        twin_out = self._outputs.get(twin) if twin else None
        if (
            twin is not None
            and twin in self._ocr_leaks
            and twin_out is not None
            and np.array_equal(twin_out, frames_out)
        ):
            leaks += self._ocr_leaks[twin]
            result.reused_ocr_from = twin
        else:
            ocr_leaks = self.read_back(picture, frames_out)
            self._ocr_leaks[real.path] = ocr_leaks
            leaks += ocr_leaks
        result.leaks = leaks
        leaked = {leak.box for leak in leaks}
        result.masked = sum(1 for index in range(result.identifying) if index not in leaked)
        kept = [kept_fraction(lum_in[0], lum_out[0], w.box) >= TECH_KEPT for w in picture.technical]
        result.technical_kept = sum(kept)
        result.allowlisted_kept = sum(
            k and a for k, a in zip(kept, allowlisted(self.allow, picture.technical), strict=True)
        )
        self.results[real.path] = result
        return result

    def read_back(self, picture: Picture, frames_out: np.ndarray) -> list[Leak]:
        leaks: list[Leak] = []
        frames = int(frames_out.shape[0])
        for k in _ocr_frames(frames):
            found = self.reader.frame(frames_out[k])
            for index, word in enumerate(picture.identifying):
                if any(overlaps(box, word.box) and matches(word.text, text) for text, box in found):
                    leaks.append(Leak(k, index, "ocr-frame"))
        for k in _checked_frames(picture, frames):
            for index, word in enumerate(picture.identifying):
                reads = self.reader.crop(frames_out[k], word.box)
                if any(matches(word.text, text) for text in reads):
                    leaks.append(Leak(k, index, "ocr-crop"))
        return leaks


def allowlisted(allow: AllowList, words: list[Word]) -> list[bool]:
    """Whether the allow-list accepts each labelled word as it is written, judged on its
    line as the engine judges words OCR reads."""
    read = [
        OcrWord(w.box[0], w.box[1], w.box[2] - w.box[0], w.box[3] - w.box[1], w.text, 100.0)
        for w in words
    ]
    return allow.allowed(read)


@dataclass(frozen=True)
class Totals:
    """The figures of a run over several files (counts; never a word)."""

    files: int
    archived: int
    quarantined: int
    crashed: int
    words: int
    masked: int
    readable_files: int  # archived files with an identifying word left (pixels or OCR)
    technical: int  # technical words on archived files
    technical_kept: int
    allowlisted: int  # allow-listed technical words on archived files
    allowlisted_kept: int
    technical_all: int  # technical words on every file, quarantined ones keep none

    def lines(self) -> list[str]:
        def share(part: int, whole: int) -> str:
            return f"{part}/{whole} = {part / max(whole, 1):.1%}"

        return [
            f"word recall: {share(self.masked, self.words)} "
            "(a quarantined file counts as masked: it never leaves)",
            f"files with identifying text left: {self.readable_files} of {self.files}",
            f"archived {self.archived}, quarantined {self.quarantined}, crashed {self.crashed}",
            f"allow-listed technical words surviving (archived files): "
            f"{share(self.allowlisted_kept, self.allowlisted)}",
            f"all technical words surviving (archived files): "
            f"{share(self.technical_kept, self.technical)}",
            f"all technical words surviving (every file): "
            f"{share(self.technical_kept, self.technical_all)}",
        ]


def totals(results: list[FileResult]) -> Totals:
    archived = [r for r in results if r.status == "archived"]
    return Totals(
        files=len(results),
        archived=len(archived),
        quarantined=sum(1 for r in results if r.status == "quarantined"),
        crashed=sum(1 for r in results if r.status == "crashed"),
        words=sum(r.identifying for r in results),
        masked=sum(r.masked for r in results),
        readable_files=sum(1 for r in archived if r.leaks),
        technical=sum(r.technical for r in archived),
        technical_kept=sum(r.technical_kept for r in archived),
        allowlisted=sum(r.allowlisted for r in archived),
        allowlisted_kept=sum(r.allowlisted_kept for r in archived),
        technical_all=sum(r.technical for r in results),
    )


def main(argv: list[str] | None = None) -> int:
    import sys

    from .frames import load_truth

    wanted = list(sys.argv[1:] if argv is None else argv)
    truth = load_truth()
    evaluator = Evaluator(truth)
    files = [f for f in truth.files if not wanted or any(w in f.path for w in wanted)]
    results = []
    for real in files:
        result = evaluator.evaluate(real)
        results.append(result)
        status = result.status + (f" ({result.detail})" if result.detail else "")
        print(
            f"{real.path}: {status}; identifying {result.masked}/{result.identifying} masked, "
            f"leaking boxes {result.leaked_boxes or '-'}; technical kept "
            f"{result.technical_kept}/{result.technical}, allow-listed "
            f"{result.allowlisted_kept}/{result.allowlisted}; {result.seconds:.1f} s"
        )
    summary = totals(results)
    print("\n".join(summary.lines()))
    return 0 if summary.masked == summary.words and summary.crashed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
