"""End to end with the DICOMweb archive store against the file store, in the same run.

    .venv/bin/python -m benchmarks.archive_store_bench [--instances 200] [--rounds 1]

storescu -> `amana run` (embedded SQLite catalog and queue) until every job is DONE, once
with the archive a folder (`file://`, the default) and once with it a throwaway Orthanc
over DICOMweb (Debian's `orthanc` + `orthanc-dicomweb`, STOW-RS of each batch), on the
same corpus of CT instances; rounds alternate the two. The slices' pixels are a smooth
ramp, not noise: noise reads as text to the OCR of sampled slices, and its second of CPU per
instance would hide the store's few milliseconds. Prints instances/s for each, the
ratio DICOMweb / file, and CPU ms per instance by process role (`receive`, `worker`, `api`
under `amana run`; `orthanc`: the archive's own process, including the warm-up instance),
which a shared machine moves much less than the rates.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from benchmarks.ingest_bench import end_to_end
from benchmarks.processes import amana_env
from tests.support.corpus import make_ct
from tests.support.orthanc import Orthanc


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _corpus(folder: Path, instances: int, studies: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ramp = (np.add.outer(np.arange(512), np.arange(512)) * 4).astype(np.uint16).tobytes()
    files = []
    for study in range(studies):
        uids = (generate_uid(), generate_uid(), generate_uid())
        for index in range(study, instances, studies):
            path = folder / f"s{study:03d}_i{index:04d}.dcm"
            make_ct(path, study, index, uids, ramp)
            files.append(path)
    return files


def _run(
    kind: str, files: list[Path], warmup: Path, work: Path, stall_s: float
) -> tuple[float, dict[str, float]]:
    home = work / f"{kind}-home"
    orthanc = None
    extra: dict[str, str] = {}
    if kind == "dicomweb":
        orthanc = Orthanc(work / f"{kind}-orthanc").start()
        extra = orthanc.amana_env()
    try:
        env = amana_env(home, None, **extra)
        logs = work / "logs" / kind
        logs.mkdir(parents=True, exist_ok=True)
        before = _cpu_s(orthanc.proc.pid) if orthanc and orthanc.proc else 0.0
        seconds, _, counts, cpu = end_to_end(
            files, env, [["run"]], 1, warmup=warmup, log_dir=logs, stall_s=stall_s
        )
        done = counts.get("DONE", 0)
        # Quarantines (slices whose noise OCR reads as text) are the same in both runs.
        if done + counts.get("QUARANTINED", 0) != len(files) + 1:
            raise RuntimeError(f"{kind}: jobs ended {counts}")
        if orthanc is not None and orthanc.proc is not None:
            cpu["orthanc"] = round((_cpu_s(orthanc.proc.pid) - before) * 1000 / len(files), 2)
            held = len(orthanc.instance_ids())
            if held != done:
                raise RuntimeError(f"Orthanc holds {held} instances, {done} archived")
        return len(files) / seconds, cpu
    finally:
        if orthanc is not None:
            orthanc.stop()
        shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--studies", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--stall-timeout", type=float, default=600.0)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="amana-store-bench-"))
    try:
        files = _corpus(work / "corpus", args.instances, args.studies)
        warmup = work / "warmup.dcm"
        make_ct(warmup, 9999, 0, ("2.25.1", "2.25.2", "2.25.3"), bytes(512 * 512 * 2))
        megabytes = sum(f.stat().st_size for f in files) / 1e6
        print(f"{len(files)} CT instances in {args.studies} studies, {megabytes:.0f} MB")
        best: dict[str, tuple[float, dict[str, float]]] = {}
        for round_ in range(args.rounds):
            for kind in ("file", "dicomweb") if round_ % 2 == 0 else ("dicomweb", "file"):
                folder = work / f"r{round_}"
                rate, cpu = _run(kind, files, warmup, folder, args.stall_timeout)
                print(f"{kind:9s} {rate:7.1f} instances/s  cpu ms/instance {cpu}", flush=True)
                if kind not in best or rate > best[kind][0]:
                    best[kind] = (rate, cpu)
        file_rate, file_cpu = best["file"]
        web_rate, web_cpu = best["dicomweb"]
        print(f"DICOMweb / file, instances/s: {web_rate / file_rate:.2f}")
        for role in ("worker", "total"):
            ratio = web_cpu.get(role, 0.0) / max(file_cpu.get(role, 0.0), 1e-9)
            print(f"DICOMweb / file, {role} CPU per instance: {ratio:.2f}")
        print(f"Orthanc's own CPU per instance stored: {web_cpu.get('orthanc', 0.0):.2f} ms")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
