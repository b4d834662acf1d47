"""An export of studies that went through the real pipeline holds none of their identity."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from archive.datasets.card import load_reference
from archive.datasets.export import export_dataset
from archive.datasets.query import Where
from archive.datasets.service import archive_rows, create_dataset, dataset_rows
from tests.support.identities import identity
from tests.support.pipeline_helpers import enqueue, process_to_end, worker_context
from tests.support.study_factory import identifying_strings, make_study

STUDIES = 6


def test_export_holds_no_identifier(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """Rule: nothing identifying in an export — studies with made-up names, IDs, accession
    numbers, physicians and original UIDs are de-identified by the pipeline, made a dataset
    and exported; no byte of any exported file (instances, manifests, card, charts,
    checksums) holds any of those values."""
    ctx = worker_context(sessions, tmp_path / "root")
    forbidden: set[bytes] = set()
    for number in range(STUDIES):
        person = identity(number)
        study = make_study(
            tmp_path / f"in{number}",
            patient_name=person.patient_name,
            patient_id=person.patient_id,
        )
        forbidden |= {s for s in identifying_strings(study) if len(s) > 4}
        process_to_end(ctx, [enqueue(ctx, path) for path in study.files])
    assert forbidden
    with sessions.begin() as session:
        dataset = create_dataset(
            session,
            name="all",
            where=Where(),
            secret=b"k" * 32,
            created_by="test",
            now=datetime.now(UTC),
        )
        rows = dataset_rows(session, dataset)
        whole = archive_rows(session)
    assert {r["patient"] for r in rows} and len({r["patient"] for r in rows}) == STUDIES
    target = tmp_path / "export"
    result = export_dataset(
        "all",
        rows,
        whole,
        load_reference(),
        archive=ctx.archive(),
        target=target,
        k_threshold=2,
    )
    assert result.instances > 0 and result.k >= 2
    files = [p for p in target.rglob("*") if p.is_file()]
    assert any(p.suffix == ".dcm" for p in files) and any(p.suffix == ".parquet" for p in files)
    for path in files:
        data = path.read_bytes()
        leaks = [value for value in forbidden if value in data]
        assert not leaks, (path.relative_to(target), leaks)
        assert str(path.relative_to(target)).encode() not in forbidden
