"""What every benchmark part returns, the machine it ran on, the final table and JSON."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TABLE_NOTES = ("quarantined", "decodes", "cpu_ms", "cpu_x_peer")


@dataclass
class Result:
    """One measured run. `unit` says how `rate` reads: "inst/s" and "files/s" are
    count / seconds, "s/frame" is seconds / count."""

    part: str
    run: str
    count: int
    seconds: float
    megabytes: float = 0.0
    unit: str = "inst/s"
    ratio: float | None = None
    ratio_to: str = ""
    notes: dict[str, Any] = field(default_factory=dict)
    # Ingest runs: the rate as a fraction of each baseline's with as many associations.
    ratios: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        if self.unit == "s/frame":
            return self.seconds / self.count if self.count else float("nan")
        return self.count / self.seconds if self.seconds > 0 else float("nan")

    @property
    def mb_per_s(self) -> float | None:
        if not self.megabytes or self.seconds <= 0:
            return None
        return self.megabytes / self.seconds

    def line(self) -> str:
        """One progress line, printed when the run ends."""
        mb = f", {self.mb_per_s:.1f} MB/s" if self.mb_per_s is not None else ""
        rate = f"{self.rate:.3f}" if self.unit == "s/frame" else f"{self.rate:.1f}"
        extra = "".join(f", {k} {_fmt(v)}" for k, v in self.notes.items())
        return (
            f"  [{self.part}] {self.run}: {self.count} in {self.seconds:.2f} s, "
            f"{rate} {self.unit}{mb}{extra}"
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rate"] = round(self.rate, 4)
        data["mb_per_s"] = None if self.mb_per_s is None else round(self.mb_per_s, 3)
        return data


def _fmt(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()) + "}"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _ratio_text(r: Result) -> str:
    if r.ratios:
        return ", ".join(f"{v:.2f}x {k}" for k, v in r.ratios.items())
    return f"{r.ratio:.2f}x {r.ratio_to}" if r.ratio is not None else "-"


def _first_line(command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        return "not installed"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    for line in (done.stdout + done.stderr).splitlines():
        if line.strip():
            return line.strip().strip("$").strip()
    return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' (modified files)' if dirty else ''}" if head else "unknown"


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "dcmtk": _first_line(["storescp", "--version"]),
        "tesseract": _first_line(["tesseract", "--version"]),
        "amana": _git_revision(),
        "pydicom": package_version("pydicom"),
        "pynetdicom": package_version("pynetdicom"),
        "dicognito": package_version("dicognito") or "not installed",
        "deid": package_version("deid") or "not installed",
        "load_average_at_start": None if load is None else [round(x, 2) for x in load],
    }


def print_machine(info: dict[str, Any]) -> None:
    print(
        f"machine: {info['cores']} cores, {info['cpu']}, {info['memory_gib']} GiB, {info['os']}\n"
        f"         python {info['python']}, {info['dcmtk']}, {info['tesseract']}\n"
        f"         amana {info['amana']}, pydicom {info['pydicom']}, "
        f"pynetdicom {info['pynetdicom']}\n"
        f"peers:   dicognito {info['dicognito']}, deid {info['deid']}\n"
        f"load average at start: {info['load_average_at_start']}",
        flush=True,
    )


def print_table(results: list[Result]) -> None:
    if not results:
        print("\nno results")
        return
    width = max(len(r.run) for r in results)
    print(f"\n{'part':9} {'run':{width}} {'rate':>10} {'unit':7} {'MB/s':>7}  {'ratio':44} notes")
    last_part = None
    for r in results:
        if last_part is not None and r.part != last_part:
            print()
        last_part = r.part
        rate = f"{r.rate:10.3f}" if r.unit == "s/frame" else f"{r.rate:10.1f}"
        mb = f"{r.mb_per_s:7.1f}" if r.mb_per_s is not None else f"{'-':>7}"
        ratio = _ratio_text(r)
        notes = ", ".join(f"{k} {_fmt(v)}" for k, v in r.notes.items() if k in TABLE_NOTES)
        print(f"{r.part:9} {r.run:{width}} {rate} {r.unit:7} {mb}  {ratio:44} {notes}".rstrip())


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
