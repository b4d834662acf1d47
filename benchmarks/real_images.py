"""Real images with burned-in identifying text: word recall of the pixel clean (issue 12).

    OMP_THREAD_LIMIT=1 .venv/bin/python -m benchmarks.real_images [--only NAME,...]

Runs every file labelled in tests/pixels/real/truth.yaml (public test images in
../shared/data, beside the repository) through the engine with the shipped ma-national
profile, as `tests/pixels/real/test_real_images.py` does, and prints per file: archived or
quarantined, identifying words masked, leaking box indices (never the words), technical
words kept, seconds; then the totals: word recall (identifying words masked / identifying
words; a quarantined file counts as masked, it never leaves), files with a readable
identity after cleaning, archived/quarantined counts, technical words surviving, seconds
per file and per frame (engine only, one core); then the speed of the pixel step in CPU
seconds (benchmarks/pixel_speed.py: one 640x480 frame, 90-frame cines, whole-frame
tesseract baseline of the same run).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
if __package__ in (None, ""):  # run as `python benchmarks/real_images.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pixel_speed import print_speed  # noqa: E402
from tests.paths import REPO_ROOT  # noqa: E402
from tests.pixels.real.evaluate import Evaluator, FileResult  # noqa: E402
from tests.pixels.real.frames import DATA_DIR, load_truth  # noqa: E402


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "anonymizer", "profiles"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _row(result: FileResult) -> str:
    leaks = ",".join(str(i) for i in result.leaked_boxes) or "-"
    kinds = sorted({leak.why for leak in result.leaks})
    status = result.status + (f" ({result.detail})" if result.detail else "")
    return (
        f"| {result.path} | {status} | {result.masked}/{result.identifying} | {leaks} "
        f"| {'/'.join(kinds) or '-'} | {result.technical_kept}/{result.technical} "
        f"| {result.frames} | {result.seconds:.2f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", default="", help="comma-separated substrings of file paths")
    parser.add_argument(
        "--no-speed",
        action="store_true",
        help="skip the speed part (one frame, 90-frame cines, whole-frame tesseract)",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="also read back the unmasked inputs: how many words the OCR check can see",
    )
    args = parser.parse_args(argv)
    if not DATA_DIR.is_dir():
        print(f"data folder not found: {DATA_DIR}", file=sys.stderr)
        return 2
    truth = load_truth()
    wanted = [part for part in args.only.split(",") if part]
    files = [f for f in truth.files if not wanted or any(w in f.path for w in wanted)]
    evaluator = Evaluator(truth)
    results = [evaluator.evaluate(real) for real in files]
    print(f"Measured on {_commit()} (OMP_THREAD_LIMIT={os.environ.get('OMP_THREAD_LIMIT')})")
    print()
    print("| file | outcome | words masked | leaking boxes | how | technical kept | frames | s |")
    print("|---|---|---|---|---|---|---|---|")
    for result in results:
        print(_row(result))
    words = sum(r.identifying for r in results)
    masked = sum(r.masked for r in results)
    readable = sum(1 for r in results if r.status != "quarantined" and r.leaks)
    crashed = sum(1 for r in results if r.status == "crashed")
    archived = sum(1 for r in results if r.status == "archived")
    quarantined = sum(1 for r in results if r.status == "quarantined")
    tech = sum(r.technical for r in results if r.status == "archived")
    tech_kept = sum(r.technical_kept for r in results if r.status == "archived")
    seconds = sum(r.seconds for r in results)
    frames = sum(r.frames for r in results)
    print()
    print(f"word recall: {masked}/{words} = {masked / max(words, 1):.1%}")
    print(f"files with identifying text left (pixels or OCR): {readable} of {len(results)}")
    print(f"archived {archived}, quarantined {quarantined}, crashed {crashed}")
    print(f"technical words kept (archived files): {tech_kept}/{tech}")
    print(
        f"engine seconds: {seconds:.1f} for {len(results)} files, "
        f"{seconds / max(len(results), 1):.2f} s/file, {seconds / max(frames, 1):.2f} s/frame "
        f"({frames} frames)"
    )
    if args.control:
        seen = total = 0
        for real in files:
            if real.pixels_equal_to is not None:
                continue
            picture = truth.pictures[real.picture]
            frames_in = evaluator.input_frames(real.path)
            read = {leak.box for leak in evaluator.read_back(picture, frames_in[:1])}
            seen += len(read)
            total += len(picture.identifying)
        print(f"OCR check sensitivity: reads {seen}/{total} identifying words on the inputs")
    if not args.no_speed:
        print()
        print_speed(rounds=3)
    return 0 if masked == words and crashed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
