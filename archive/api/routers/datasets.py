"""Datasets for AI teams and certification bodies: list, read, create, seal, export.

An export over HTTP writes into a folder under the configured export root (AMANA_EXPORT_DIR)
that the caller names by a relative path, or streams the export as a tar archive; it never
writes where a caller's path would lead, and it does not send to DICOMweb servers (a caller
could make the archive host reach any address: that is the command line's `--to
dicomweb+https://...`, run by an operator)."""

from __future__ import annotations

import re
import secrets
import shutil
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from anonymizer.errors import RejectError, RetryableError
from archive import audit
from archive.api.deps import (
    AuditDep,
    DatasetReader,
    DatasetSealer,
    DatasetWriter,
    SessionDep,
    StateDep,
    unit,
)
from archive.datasets.query import Where
from archive.datasets.service import (
    create_dataset,
    get_dataset,
    holds_sealed,
    list_datasets,
    seal_dataset,
    summary,
)
from archive.datasets.splits import DEFAULT_PROPORTIONS

router = APIRouter(tags=["datasets"])


class DatasetIn(BaseModel):
    name: str = Field(max_length=64)
    where: dict[str, Any] = Field(default_factory=dict)
    proportions: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_PROPORTIONS))
    parent: str | None = Field(default=None, max_length=64)


class DatasetOut(BaseModel):
    """A frozen dataset: its query, split proportions, counts, seal."""

    name: str
    parent_id: int | None
    query: dict[str, Any]
    proportions: dict[str, float]
    patients: int
    studies: int
    instances: int
    sealed_at: str | None
    created_by: str
    created_at: str | None
    holds_sealed_patients: bool | None = None


@router.get("/datasets", response_model=list[DatasetOut])
def datasets(
    request: Request, session: SessionDep, ctx: AuditDep, _who: DatasetReader
) -> list[dict[str, Any]]:
    """Every dataset: its query, split proportions, counts and seal."""
    ctx.set(audit.EventId.QUERY, audit.Action.EXECUTE, object_type="dataset")
    with unit(request, ctx, session) as work:
        rows = list_datasets(session)
        work.note(rows=len(rows))
    return rows


@router.get("/datasets/{name}", response_model=DatasetOut)
def dataset(
    name: str, request: Request, session: SessionDep, ctx: AuditDep, _who: DatasetReader
) -> dict[str, Any]:
    ctx.set(audit.EventId.QUERY, audit.Action.READ, object_type="dataset", object_id=name)
    with unit(request, ctx, session):
        found = get_dataset(session, name)
        return summary(found, holds_sealed(session, found))


@router.post("/datasets", status_code=201, response_model=DatasetOut)
def new_dataset(
    body: DatasetIn,
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    state: StateDep,
    who: DatasetWriter,
) -> dict[str, Any]:
    """Freeze what `where` selects (patients already sealed left out), split by patient."""
    ctx.set(audit.EventId.QUERY, audit.Action.CREATE, object_type="dataset", object_id=body.name)
    with unit(request, ctx, session) as work:
        if state.dataset_secret is None:
            raise RetryableError("this API was started without the pseudonymization key")
        try:
            where = Where.from_json(body.where)
        except (ValueError, TypeError) as exc:
            raise RejectError(str(exc), code="dataset_invalid") from exc
        created = create_dataset(
            session,
            name=body.name,
            where=where,
            secret=state.dataset_secret,
            created_by=who.user,
            now=datetime.now(UTC),
            proportions=body.proportions,
            parent=body.parent,
        )
        work.note(patients=created.patients, instances=created.instances)
        return summary(created)


class SealOut(BaseModel):
    dataset: str
    sealed_patients: int


@router.post("/datasets/{name}/seal", response_model=SealOut)
def seal(
    name: str, request: Request, session: SessionDep, ctx: AuditDep, who: DatasetSealer
) -> dict[str, Any]:
    """Hold the dataset's patients out for certification (certifier): no training dataset
    created afterwards holds them, and only a certifier exports them."""
    ctx.set(
        audit.EventId.SECURITY_ALERT,
        audit.Action.UPDATE,
        event_type=audit.EventType.USE_OF_RESTRICTED_FUNCTION,
        object_type="dataset",
        object_id=name,
    )
    with unit(request, ctx, session) as work:
        count = seal_dataset(session, name, sealed_by=who.user, now=datetime.now(UTC))
        work.note(sealed_patients=count)
    return {"dataset": name, "sealed_patients": count}


# Relative, made of plain names: no leading slash, no "..", no backslash or control byte.
FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9][A-Za-z0-9._-]{0,63}){0,7}$")
STREAMS = ".streams"


class ExportIn(BaseModel):
    folder: str | None = Field(
        default=None,
        max_length=520,
        description="a folder inside the server's export root (created); absent: the export "
        "is streamed back as a tar archive",
    )
    k: int | None = Field(
        default=None, ge=2, le=1000, description="raise the profiles' k threshold (never lower)"
    )


class ExportOut(BaseModel):
    dataset: str
    folder: str
    sealed: bool
    instances: int
    copied: int
    k: int
    k_threshold: int
    l_diversity: int
    l_threshold: int
    generalization: list[str]
    suppressed_patients: int


def export_folder(root: Path, folder: str) -> Path:
    """`folder` inside `root`, symlinks followed; refused when it leads anywhere else."""
    if not FOLDER.match(folder) or folder.startswith(STREAMS):
        raise RejectError(
            "folder: a relative path of plain names (letters, digits, . _ -) inside the "
            "export root",
            code="bad_target",
        )
    base = root.resolve()
    resolved = (base / folder).resolve()
    if not resolved.is_relative_to(base) or resolved == base:
        raise RejectError("folder leads outside the export root", code="bad_target")
    return resolved


def _tar_stream(folder: Path, name: str) -> Iterator[bytes]:
    """The folder as an uncompressed tar (DICOM pixels rarely compress), then removed."""

    class Chunks:
        def __init__(self) -> None:
            self.parts: list[bytes] = []

        def write(self, data: bytes) -> int:
            self.parts.append(bytes(data))
            return len(data)

        def take(self) -> bytes:
            out = b"".join(self.parts)
            self.parts = []
            return out

    out = Chunks()
    try:
        with tarfile.open(fileobj=out, mode="w|") as tar:  # type: ignore[call-overload]
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                tar.add(path, arcname=f"{name}/{path.relative_to(folder).as_posix()}")
                yield out.take()
        yield out.take()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@router.post(
    "/datasets/{name}/export",
    response_model=ExportOut,
    responses={
        200: {
            "description": "the export's figures (JSON), or the export itself as a tar "
            "archive when no folder is named",
            "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
def export(
    name: str,
    body: ExportIn,
    request: Request,
    session: SessionDep,
    ctx: AuditDep,
    state: StateDep,
    who: DatasetReader,
) -> Any:
    """Export a dataset (researcher; certifier for a set holding sealed patients) into a
    folder under the export root, or streamed as a tar archive when no folder is named:
    instances, manifest (Parquet, CSV), card (JSON, HTML, charts), SHA256SUMS. The k and l
    thresholds are the profiles'. Every attempt, refused ones included, is an audited
    Export event."""
    from archive.datasets.runner import run_export

    ctx.set(audit.EventId.EXPORT, audit.Action.READ, object_type="dataset", object_id=name)
    with unit(request, ctx, session) as work:
        if state.archive_store is None or state.export_dir is None:
            raise RetryableError("this API was started without an archive or export folder")
        if body.folder is not None:
            folder = export_folder(state.export_dir, body.folder)
            work.note(folder=body.folder)
        else:
            folder = state.export_dir / STREAMS / secrets.token_hex(8)
            work.note(streamed=True)
        try:
            run = run_export(
                work,
                name,
                who,
                archive=state.archive_store,
                profiles_dir=state.profiles_dir,
                folder=folder,
                k_at_least=body.k,
            )
        except BaseException:
            if body.folder is None:
                shutil.rmtree(folder, ignore_errors=True)
            raise
    if body.folder is None:
        return StreamingResponse(
            _tar_stream(folder, name),
            media_type="application/x-tar",
            headers={"Content-Disposition": f'attachment; filename="{name}.tar"'},
        )
    result = run.result
    return {
        "dataset": name,
        "folder": body.folder,
        "sealed": run.sealed,
        "instances": result.instances,
        "copied": result.copied,
        "k": result.k,
        "k_threshold": run.k,
        "l_diversity": result.l_diversity,
        "l_threshold": run.thresholds.l_diversity,
        "generalization": list(result.generalization),
        "suppressed_patients": result.suppressed_patients,
    }
