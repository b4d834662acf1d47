"""Write a dataset out: its instances from the archive store to a sink (a folder, or a
DICOMweb server: archive/datasets/dicomweb.py), and to a folder a manifest (Parquet and
CSV), the card (JSON, HTML, charts) and a SHA256SUMS file.

Each file's headers are brought to the manifest's generalization level (headers.py).
Resumable: a file already in place with the same bytes is not written again, and files are
written under a temporary name and renamed, so an interrupted export leaves only
whole files. Nothing identifying goes in: pseudonyms, new UIDs and generalized categories.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from anonymizer.errors import RejectError
from archive.datasets.card import build_card, draw, mask_count, render_html
from archive.datasets.headers import generalize_file
from archive.datasets.privacy import protect
from archive.stores import ArchiveStore

MANIFEST_COLUMNS = (
    "split",
    "patient",
    "study_uid",
    "series_uid",
    "sop_uid",
    "sop_class_uid",
    "transfer_syntax_uid",
    "modality",
    "body_part",
    "region",
    "sex",
    "age_band",
    "study_month",
    "manufacturer",
    "model",
    "profile_version",
    "key_id",
    "size_bytes",
    "sha256",
    "archive_sha256",
    "path",
)


class ReidentificationRisk(RejectError):
    def __init__(self, k: int, threshold: int, l_div: int = 0, l_threshold: int = 1) -> None:
        super().__init__(
            f"k-anonymity {k} (threshold {threshold}), l-diversity {l_div} (threshold "
            f"{l_threshold}) cannot be met without leaving out too many patients: "
            "export refused",
            code="k_anonymity",
        )


@dataclass(frozen=True)
class ExportResult:
    instances: int
    suppressed_patients: int
    copied: int
    k: int
    l_diversity: int
    generalization: tuple[str, ...]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class InstanceSink(Protocol):
    """Where an export's instances go. `put` returns True when it wrote (False: the same
    instance with the same bytes was already there, so a resumed export skips it)."""

    def put(self, relpath: str, data: bytes, digest: str, row: Mapping[str, Any]) -> bool: ...

    def close(self) -> None: ...


class FolderSink:
    """Files under `root`, written under a temporary name and renamed."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, relpath: str, data: bytes, digest: str, row: Mapping[str, Any]) -> bool:
        target = self.root / relpath
        if target.exists() and sha256_of(target) == digest:
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(target, data)
        return True

    def close(self) -> None:
        return None


def _prepared(
    archive: ArchiveStore, source: Path, archive_sha256: str, row: Mapping[str, str]
) -> tuple[bytes, str]:
    """The archived instance (read from the archive store), checked against the catalog,
    its headers generalized to `row`; with the SHA-256 of those bytes."""
    data = archive.read(source)
    if data is None:
        raise RejectError("an archived instance is missing from the archive", code="corrupt")
    if hashlib.sha256(data).hexdigest() != archive_sha256:
        raise RejectError("an archived file does not match its catalog checksum", code="corrupt")
    out = generalize_file(data, row)
    return out, hashlib.sha256(out).hexdigest()


def export_dataset(
    name: str,
    rows: Sequence[Mapping[str, Any]],
    archive_rows: Sequence[Mapping[str, Any]],
    reference: Mapping[str, float],
    *,
    archive: ArchiveStore,
    target: Path,
    sink: InstanceSink | None = None,
    k_threshold: int = 5,
    l_threshold: int = 1,
    thresholds_from: Mapping[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Check k-anonymity and l-diversity first (generalizing, leaving out, or refusing),
    then copy and write. The instances go to `sink` (default: `target`/files); the manifest,
    card and checksums to `target`. `thresholds_from` (profile -> its version and
    thresholds) goes on the card."""
    protection = protect(
        [{**{k: str(v) for k, v in r.items()}, "patient": str(r["patient"])} for r in rows],
        k_threshold,
        l_threshold=l_threshold,
    )
    if protection.refused:
        raise ReidentificationRisk(protection.k, k_threshold, protection.l_diversity, l_threshold)
    target.mkdir(parents=True, exist_ok=True)
    sink = sink if sink is not None else FolderSink(target)
    manifest: list[dict[str, Any]] = []
    copied = 0
    rows = [rows[i] for i in protection.kept]
    for row, protected in zip(rows, protection.records, strict=True):
        relpath = "/".join(
            (
                "files",
                str(row["split"]),
                str(row["study_uid"]),
                str(row["series_uid"]),
                f"{row['sop_uid']}.dcm",
            )
        )
        data, digest = _prepared(
            archive, Path(str(row["archive_path"])), str(row["sha256"]), protected
        )
        if sink.put(relpath, data, digest, protected):
            copied += 1
        if progress is not None:
            progress(1)
        entry = {c: row.get(c) for c in MANIFEST_COLUMNS}
        for field in ("age_band", "study_month", "manufacturer", "model"):
            entry[field] = protected[field]
        # The exported file's digest: its headers were generalized, so it is not the
        # archive's (kept as archive_sha256 for tracing back).
        entry["sha256"] = digest
        entry["archive_sha256"] = row["sha256"]
        entry["path"] = relpath
        manifest.append(entry)
    sink.close()
    _write_manifest(manifest, target)
    splits = Counter(split for _, split in {(r["patient"], r["split"]) for r in rows})
    # The card shows marginal counts (one dimension at a time) of the exported patients at
    # the archive's own granularity, so they compare with the archive and the population;
    # the combinations k-anonymity guards are those of the manifest.
    card = build_card(
        name,
        rows,
        archive_rows,
        reference,
        small_cell=k_threshold,
        extra={
            "studies": len({r["study_uid"] for r in rows}),
            "instances": len(rows),
            "splits": {s: mask_count(n, k_threshold) for s, n in sorted(splits.items())},
            "k_anonymity": protection.k,
            "k_threshold": k_threshold,
            "l_diversity": protection.l_diversity,
            "l_threshold": l_threshold,
            "thresholds_from": dict(thresholds_from or {}),
            "generalization": list(protection.steps),
            "suppressed_patients": protection.suppressed_patients,
        },
    )
    _write_atomic(target / "card.json", json.dumps(card, indent=2, sort_keys=True).encode())
    draw(card, target / "charts")
    _write_atomic(target / "card.html", render_html(card, target / "charts").encode("utf-8"))
    _write_checksums(target)
    return ExportResult(
        len(rows),
        protection.suppressed_patients,
        copied,
        protection.k,
        protection.l_diversity,
        protection.steps,
    )


def _write_manifest(manifest: list[dict[str, Any]], target: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(manifest)
    tmp = target / "manifest.parquet.part"
    pq.write_table(table, tmp)
    os.replace(tmp, target / "manifest.parquet")
    tmp_csv = target / "manifest.csv.part"
    with tmp_csv.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(MANIFEST_COLUMNS))
        writer.writeheader()
        writer.writerows(manifest)
    os.replace(tmp_csv, target / "manifest.csv")


def _write_checksums(target: Path) -> None:
    """`sha256sum -c` format, every file of the export but this one."""
    lines = []
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        rel = path.relative_to(target).as_posix()
        if rel == "SHA256SUMS" or rel.endswith(".part"):
            continue
        lines.append(f"{sha256_of(path)}  {rel}\n")
    _write_atomic(target / "SHA256SUMS", "".join(lines).encode("utf-8"))
