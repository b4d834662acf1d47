"""Amana's benchmarks in one run, on one machine, against baselines measured in that run.

    .venv/bin/pip install -e '.[bench]'      # the de-identification peers
    .venv/bin/python -m benchmarks [--instances 2000] [--studies 20] [--us-share 0.1]
        [--parallel 4] [--receiver-processes N] [--skip-e2e] [--skip-peers]
        [--only baseline,receiver,e2e,deid,ocr] [--json results.json]

Generates its own corpus (CT 512x512 16-bit with made-up identities, grouped in studies,
plus an optional share of 640x480 US frames with burned-in made-up text), then measures:

  baseline  dcmtk storescu -> storescp writing to disk (TCP_NODELAY, 128 KiB PDU,
            bit-preserving), 1 and --parallel associations;
  receiver  storescu -> `amana receive` alone (spool + job rows), 1 and --parallel;
  e2e       storescu -> `amana run` (embedded) until every job is DONE or QUARANTINED, then
            PostgreSQL + Redis with 1 and 2 worker processes; each with 1 and --parallel;
  deid      `amana anonymize` (and its engine on one core) against dicognito and deid on
            the corpus's CT files (tag-only);
  ocr       seconds per US frame: text detection and the whole pixel clean against
            whole-frame tesseract; `amana anonymize --jobs 1` on the corpus's US files;
  sampling  one 500-slice primary CT series without text through the worker pipeline:
            decodes and CPU with sampling against no sampling (benchmarks/sampling_bench.py).

Prints instances/s and MB/s for each run with the ratio to storescp (1 association),
files/s with the ratio to the faster peer, s/frame for OCR. Exit status 1 when a part failed
(reported, never replaced by a guess).
"""

from __future__ import annotations

import os

# One tesseract thread per process (what Amana's workers use); before anything loads it.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

import argparse  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from benchmarks.report import Result, machine, print_machine, print_table, write_json  # noqa: E402
from tests.support.corpus import Corpus, build_corpus  # noqa: E402

PARTS = ("baseline", "receiver", "e2e", "deid", "ocr", "sampling")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--instances", type=int, default=2000, help="corpus size (default 2000)")
    parser.add_argument("--studies", type=int, default=20, help="studies (default 20)")
    parser.add_argument(
        "--us-share",
        type=float,
        default=0.0,
        help="fraction of --instances that are US frames with burned-in text (default 0)",
    )
    parser.add_argument(
        "--parallel", type=int, default=4, help="associations besides 1 (default 4)"
    )
    parser.add_argument(
        "--receiver-processes",
        type=int,
        default=None,
        help="set AMANA_RECEIVER_PROCESSES for the receiver (default: unset, product default)",
    )
    parser.add_argument("--skip-e2e", action="store_true", help="no end-to-end runs")
    parser.add_argument("--skip-peers", action="store_true", help="no dicognito / deid runs")
    parser.add_argument("--only", help=f"comma list of parts: {','.join(PARTS)}")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--rounds", type=int, default=2, help="de-id rounds, best kept")
    parser.add_argument("--ocr-frames", type=int, default=5, help="US frames timed one by one")
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=600.0,
        help="end-to-end: give up when no job finished for this many seconds",
    )
    parser.add_argument(
        "--work", type=Path, help="working folder, kept (default: a temporary one, removed)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary working folder")
    args = parser.parse_args(argv)
    parts = list(PARTS)
    if args.only:
        wanted = [p.strip() for p in args.only.split(",") if p.strip()]
        unknown = sorted(set(wanted) - set(PARTS))
        if unknown:
            parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
        parts = [p for p in PARTS if p in wanted]
    if args.skip_e2e and "e2e" in parts:
        parts.remove("e2e")
    if args.instances < 1 or args.studies < 1 or args.parallel < 1:
        parser.error("--instances, --studies and --parallel must be >= 1")
    if not 0.0 <= args.us_share <= 1.0:
        parser.error("--us-share is a fraction between 0 and 1")
    if args.receiver_processes is not None and args.receiver_processes < 1:
        parser.error("--receiver-processes must be >= 1")
    args.parts = parts
    return args


def receiver_processes_note(given: int | None) -> str:
    if given is not None:
        return f"{given} (--receiver-processes)"
    if "AMANA_RECEIVER_PROCESSES" in os.environ:
        return f"{os.environ['AMANA_RECEIVER_PROCESSES']} (inherited from the environment)"
    from amana.settings import Settings

    default = getattr(Settings(), "receiver_processes", None)
    return "unset" + (f" (product default {default})" if default is not None else "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    print_machine(info)
    options = {
        "instances": args.instances,
        "studies": args.studies,
        "us_share": args.us_share,
        "parallel": args.parallel,
        "receiver_processes": args.receiver_processes,
        "parts": args.parts,
        "peers": not args.skip_peers,
        "rounds": args.rounds,
        "ocr_frames": args.ocr_frames,
        "OMP_THREAD_LIMIT": os.environ.get("OMP_THREAD_LIMIT"),
    }
    print(
        f"parts:   {', '.join(args.parts)}; associations 1 and {args.parallel}; "
        f"AMANA_RECEIVER_PROCESSES {receiver_processes_note(args.receiver_processes)}"
    )
    work = args.work or Path(tempfile.mkdtemp(prefix="amana-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    failures: list[dict[str, str]] = []

    def failed(what: str, exc: BaseException) -> None:
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        failures.append({"run": what, "error": detail})
        print(f"  FAILED {what}: {detail[-1500:]}", flush=True)

    started = time.monotonic()
    corpus: Corpus | None = None
    try:
        t0 = time.monotonic()
        corpus = build_corpus(
            work / "corpus",
            instances=args.instances,
            studies=args.studies,
            us_share=args.us_share,
        )
        print(f"corpus:  {corpus.describe()} (made in {time.monotonic() - t0:.0f} s, {work})\n")
        for part in args.parts:
            print(f"== {part}", flush=True)
            try:
                results += run_part(part, corpus, work, args, failed)
            except Exception as exc:  # noqa: BLE001 - reported; the other parts still run
                failed(part, exc)
        from benchmarks.ingest_bench import apply_baseline_ratio

        apply_baseline_ratio(results)
        print_table(results)
        if "baseline" not in args.parts and any(r.part in ("receiver", "e2e") for r in results):
            print("(no baseline part in this run: no ratio to storescp)")
        if failures:
            print("\nfailed (no figure):")
            for failure in failures:
                print(f"  {failure['run']}: {failure['error'].splitlines()[-1]}")
        print(f"\ntotal {time.monotonic() - started:.0f} s")
        if args.json:
            payload: dict[str, Any] = {
                "machine": info,
                "options": options,
                "corpus": {
                    "ct_instances": len(corpus.ct),
                    "us_instances": len(corpus.us),
                    "studies": corpus.studies,
                    "us_studies": corpus.us_studies,
                    "megabytes": round(corpus.megabytes, 1),
                },
                "results": [r.as_dict() for r in results],
                "failures": failures,
                "seconds_total": round(time.monotonic() - started, 1),
            }
            write_json(args.json, payload)
            print(f"figures written to {args.json}")
    finally:
        if args.keep or args.work is not None:
            print(f"working folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


def run_part(
    part: str,
    corpus: Corpus,
    work: Path,
    args: argparse.Namespace,
    failed: Callable[[str, BaseException], None],
) -> list[Result]:
    if part == "baseline":
        from benchmarks.ingest_bench import run_baseline

        return run_baseline(corpus, work, args.parallel)
    if part == "receiver":
        from benchmarks.ingest_bench import run_receiver

        return run_receiver(corpus, work, args.parallel, args.receiver_processes)
    if part == "e2e":
        from benchmarks.ingest_bench import run_e2e

        return run_e2e(
            corpus,
            work,
            args.parallel,
            args.receiver_processes,
            stall_s=args.stall_timeout,
            on_error=failed,
        )
    if part == "deid":
        from benchmarks.anonymize_bench import run_deid_part

        if not corpus.ct:
            print("  no CT files in the corpus (--us-share 1): nothing to compare")
            return []
        if corpus.us:
            print(f"  on the corpus's {len(corpus.ct)} CT files (tag-only; peers clean no pixels)")
        return run_deid_part(
            corpus.ct,
            corpus.ct_folder,
            work,
            rounds=args.rounds,
            peers=not args.skip_peers,
            on_error=failed,
        )
    if part == "ocr":
        from benchmarks.ocr_bench import run_ocr_part

        if not corpus.us:
            print(f"  no US share in the corpus: {args.ocr_frames} US frames made for this part")
        return run_ocr_part(corpus, work, args.ocr_frames)
    if part == "sampling":
        from benchmarks.sampling_bench import run_sampling_part

        return run_sampling_part(work / "sampling", rounds=args.rounds)
    raise ValueError(part)


if __name__ == "__main__":
    sys.exit(main())
