"""Tag-only de-identification throughput: `amana anonymize` against dicognito and deid.

Generates its own corpus (tests/support/corpus.py: CT instances 512x512 16-bit, a realistic
header with sequences and private blocks, made-up identities) into a temporary folder,
then, in the same run and on the same files:

- amana: the real command, `amana anonymize IN --out OUT` in a subprocess (start-up,
  profile loading, file I/O and its default worker processes included), and the engine
  in-process on one core for reference;
- dicognito: `Anonymizer().anonymize(ds)` per file, read and write included, one core;
- deid: `replace_identifiers` with its default recipe, read and write included, one core.

amana and dicognito alternate for --rounds rounds and keep their best round, so that a
burst of load on a shared machine does not decide the ratio; deid, an order of magnitude
slower, runs once. Prints files/s for each and the ratio of amana to the faster peer
(target: >= 2). A peer that is not installed is skipped with a message, never estimated.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python -m benchmarks.anonymize_bench --instances 1000
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in (None, ""):  # run as `python benchmarks/anonymize_bench.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import REPO, Result, package_version, print_table  # noqa: E402
from tests.support.corpus import build_corpus  # noqa: E402

if TYPE_CHECKING:
    from anonymizer.engine import Deidentifier

FASTER_PEER = "faster peer"


def amana_command() -> list[str]:
    amana = Path(sys.executable).with_name("amana")
    return [str(amana)] if amana.exists() else [sys.executable, "-m", "amana.cli"]


def command_processes(files: int, jobs: int = 0) -> int:
    """How many processes `amana anonymize` uses for `files` inputs (its own rule)."""
    workers = jobs or os.cpu_count() or 1
    return max(1, min(workers, files // 8 or 1))


def run_amana_cli(inputs: Path, out: Path, key: Path, *, jobs: int = 0) -> tuple[int, int]:
    """`amana anonymize INPUTS --out OUT`; (archived, quarantined) counted from its outputs
    and inputs (it exits 1 when something was quarantined)."""
    env = {**os.environ, "AMANA_KEY_FILE": str(key), "AMANA_HOME": str(out.parent / "home")}
    result = subprocess.run(
        [*amana_command(), "anonymize", str(inputs), "--out", str(out), "--create-key"]
        + (["--jobs", str(jobs)] if jobs else []),
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    archived = sum(1 for _ in out.rglob("*.dcm"))
    inputs_count = sum(1 for _ in inputs.rglob("*.dcm"))
    if result.returncode not in (0, 1) or (result.returncode == 1 and archived == inputs_count):
        raise RuntimeError(
            f"amana anonymize failed ({result.returncode}):\n"
            f"{(result.stdout + result.stderr)[-2000:]}"
        )
    return archived, inputs_count - archived


@cache
def amana_engine() -> Deidentifier:
    """The engine with ma-national loaded, built once (off the clock: the in-process runs
    time the per-file work; the command's run includes its start-up)."""
    from anonymizer.engine import Deidentifier, load_profile
    from anonymizer.pseudonyms import key_from_bytes

    engine = Deidentifier(load_profile("ma-national", REPO / "profiles"), key_from_bytes(b"b" * 32))
    engine.warm_up()  # what a worker does before its first job
    return engine


def run_amana_engine(files: list[Path], out: Path) -> int:
    from anonymizer.paths import archive_relpath

    engine = amana_engine()
    for file in files:
        outcome = engine.deidentify(file.read_bytes())
        target = out / archive_relpath(outcome.facts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(outcome.data)
    return len(files)


def run_dicognito(files: list[Path], out: Path) -> int:
    import pydicom
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer()
    out.mkdir(parents=True, exist_ok=True)
    for file in files:
        ds = pydicom.dcmread(file)
        anonymizer.anonymize(ds)
        ds.save_as(out / file.name)
    return len(files)


def run_deid(files: list[Path], out: Path) -> int:
    from deid.config import DeidRecipe
    from deid.dicom import get_identifiers, replace_identifiers

    out.mkdir(parents=True, exist_ok=True)
    recipe = DeidRecipe()  # deid's default dicom recipe
    names = [str(f) for f in files]
    ids = get_identifiers(names)
    replace_identifiers(
        dicom_files=names, deid=recipe, ids=ids, save=True, output_folder=str(out), overwrite=True
    )
    return len(files)


def peer_available(module: str, package: str) -> str | None:
    """None when `module` imports, else why not (printed; the peer is skipped)."""
    try:
        __import__(module)
    except Exception as exc:  # noqa: BLE001 - any import failure means: skip this peer
        return (
            f"{package} not usable ({type(exc).__name__}: {exc}); install the peers with "
            f"`.venv/bin/pip install -e '.[bench]'` -- skipped, no figure"
        )
    return None


def run_deid_part(
    files: list[Path],
    folder: Path,
    work: Path,
    *,
    rounds: int = 2,
    peers: bool = True,
    on_error: Callable[[str, BaseException], None] | None = None,
) -> list[Result]:
    """`files` (all of them in `folder`, which the command reads) through amana, dicognito
    and deid. Returns one Result per tool, best round; amana's carry the ratio to the
    faster peer that ran."""
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    processes = command_processes(len(files))
    best: dict[str, float] = {}
    rounds_run: dict[str, int] = {}
    extra: dict[str, dict[str, object]] = {}
    labels = [
        f"amana anonymize (command, ma-national, {processes} processes)",
        "amana engine in-process, 1 core",
    ]

    def cli(out: Path) -> int:
        archived, quarantined = run_amana_cli(folder, out, work / "k.key")
        extra[labels[0]] = {"quarantined": quarantined}
        return archived + quarantined

    runs: list[tuple[str, Callable[[Path], int]]] = [
        (labels[0], cli),
        (labels[1], lambda out: run_amana_engine(files, out)),
    ]
    peer_labels: list[str] = []
    if peers:
        reason = peer_available("dicognito.anonymizer", "dicognito")
        if reason is None:
            label = f"dicognito {package_version('dicognito')} (in-process, 1 core)"
            runs.append((label, lambda out: run_dicognito(files, out)))
            peer_labels.append(label)
        else:
            print(f"  [deid] {reason}", flush=True)
    failed: set[str] = set()
    best_cpu: dict[str, float] = {}
    amana_engine()  # profile loading is not per-file work

    def timed(label: str, run: Callable[[Path], int], out: Path) -> None:
        os.sync()  # nobody pays for the write-back of the corpus or the previous outputs
        start = time.perf_counter()
        cpu_start = time.process_time()
        try:
            count = run(out)
            seconds = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
        except Exception as exc:  # noqa: BLE001 - reported, the others still run
            failed.add(label)
            if on_error is None:
                raise
            on_error(label, exc)
            return
        finally:
            # Off the clock: removing the outputs is nobody's de-identification work.
            shutil.rmtree(out, ignore_errors=True)
        if count != len(files):
            raise RuntimeError(f"{label} processed {count} of {len(files)} files")
        best[label] = min(seconds, best.get(label, float("inf")))
        rounds_run[label] = rounds_run.get(label, 0) + 1
        cpu_note = ""
        if "in-process" in label:
            # CPU of this process (read, de-identify, write): on a shared machine the
            # wall-clock rates of identical runs moved by 2x, CPU per file far less.
            cpu_ms = cpu / len(files) * 1000
            best_cpu[label] = min(cpu_ms, best_cpu.get(label, float("inf")))
            cpu_note = f", {cpu_ms:.2f} CPU ms/file"
        print(f"  [deid] {label}: {len(files) / seconds:.1f} files/s{cpu_note}", flush=True)

    for round_number in range(rounds):
        # alternate the order
        for label, run in runs if round_number % 2 == 0 else runs[::-1]:
            if label not in failed:
                timed(label, run, work / f"deid-out-{round_number}-{label.split()[0]}")
    if peers:
        reason = peer_available("deid.dicom", "deid")
        if reason is None:
            label = f"deid {package_version('deid')} default recipe (in-process, 1 core)"
            timed(label, lambda out: run_deid(files, out), work / "deid-out-deid")
            peer_labels.append(label)
        else:
            print(f"  [deid] {reason}", flush=True)

    results = [
        Result(
            "deid",
            label,
            len(files),
            seconds,
            megabytes,
            unit="files/s",
            notes={"best_of_rounds": rounds_run[label], **extra.get(label, {}),
                   **({"cpu_ms": round(best_cpu[label], 2)} if label in best_cpu else {})},
        )
        for label, seconds in best.items()
    ]
    peer_rates = [r.rate for r in results if r.run in peer_labels]
    if peer_rates:
        for r in results:
            if r.run.startswith("amana"):
                r.ratio = r.rate / max(peer_rates)
                r.ratio_to = FASTER_PEER
    # The same ratio on CPU per file (in-process runs only): the engine's own figure.
    peer_cpu = [best_cpu[label] for label in peer_labels if label in best_cpu]
    if peer_cpu and labels[1] in best_cpu:
        for r in results:
            if r.run == labels[1]:
                r.notes["cpu_x_peer"] = round(min(peer_cpu) / best_cpu[labels[1]], 2)
    order = [*labels, *peer_labels]
    results.sort(key=lambda r: order.index(r.run))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="rounds for amana/dicognito")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the corpus and outputs here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="amana-bench-")) if args.keep is None else args.keep
    try:
        corpus = build_corpus(work / "in", instances=args.instances, studies=args.studies)
        print(f"corpus: {corpus.describe()} in {work}\n", flush=True)
        results = run_deid_part(
            corpus.ct, corpus.ct_folder, work, rounds=args.rounds, peers=not args.skip_peers
        )
        print_table(results)
        print("\ntarget: amana >= 2.00x the faster peer")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
