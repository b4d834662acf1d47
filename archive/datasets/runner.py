"""One export, as the command line and the API both run it inside their audited unit of
work: the caller's right to the dataset, the profiles' thresholds, the export, and what the
audit event says of it (counts, thresholds, target; never a value from a file)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from archive.audit.unit import Work
from archive.datasets.card import load_reference
from archive.datasets.dicomweb import DicomwebSink, is_dicomweb
from archive.datasets.export import ExportResult, InstanceSink, export_dataset
from archive.datasets.models import Dataset
from archive.datasets.service import archive_rows, check_export, dataset_rows, get_dataset
from archive.datasets.thresholds import Thresholds, thresholds_for
from archive.governance.auth import Principal
from archive.stores import ArchiveStore


@dataclass(frozen=True)
class ExportRun:
    dataset: Dataset
    sealed: bool
    result: ExportResult
    thresholds: Thresholds
    k: int


def run_export(
    work: Work,
    name: str,
    principal: Principal,
    *,
    archive: ArchiveStore,
    profiles_dir: Path,
    folder: Path,
    instances_to: str | None = None,
    k_at_least: int | None = None,
    on_start: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportRun:
    """Export dataset `name` for `principal`: the instances to `instances_to` (a
    dicomweb+http(s) address) or under `folder`, the manifest and card to `folder`.
    `k_at_least` may raise the profiles' k, never lower it."""
    dataset = get_dataset(work.session, name)
    work.note(target="dicomweb" if instances_to else "folder")
    sealed = check_export(work.session, dataset, principal)
    rows = dataset_rows(work.session, dataset)
    thresholds = thresholds_for(work.session, {str(r["profile_name"]) for r in rows}, profiles_dir)
    k = max(thresholds.k, k_at_least or 0)
    sink: InstanceSink | None = None
    if instances_to is not None:
        if not is_dicomweb(instances_to):
            raise ValueError("instances_to is a dicomweb+http(s) address")
        sink = DicomwebSink(instances_to)
        work.note(dicomweb=sink.url)
    if on_start is not None:
        on_start(len(rows))
    result = export_dataset(
        name,
        rows,
        archive_rows(work.session),
        load_reference(),
        archive=archive,
        target=folder,
        sink=sink,
        k_threshold=k,
        l_threshold=thresholds.l_diversity,
        thresholds_from={
            profile: {"version": version, "k_anonymity": pk, "l_diversity": pl}
            for profile, (version, pk, pl) in thresholds.sources.items()
        },
        progress=progress,
    )
    work.note(
        sealed=sealed,
        instances=result.instances,
        copied=result.copied,
        patients=dataset.patients,
        k=result.k,
        k_threshold=k,
        l=result.l_diversity,
        l_threshold=thresholds.l_diversity,
        generalization=list(result.generalization),
        suppressed_patients=result.suppressed_patients,
    )
    return ExportRun(dataset, sealed, result, thresholds, k)
