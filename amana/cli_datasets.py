"""`amana dataset`: cohorts for adapting and certifying AI models (archive/datasets).

Every command names its caller by API token (`--token` or AMANA_TOKEN), as the stewards'
commands do, so that the role decides (researcher, certifier) and the trail names the
person; each is one audited unit of work, refusals included.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress

from amana.cli_common import (
    FormatOpt,
    audited_command,
    catalog_session,
    cli_record,
    print_rows,
)
from amana.settings import Settings

if TYPE_CHECKING:
    from archive.audit.unit import Work
    from archive.governance.auth import Permission, Principal

dataset_app = typer.Typer(
    help="Datasets for adapting and certifying AI models.", no_args_is_help=True
)
TokenOpt = Annotated[
    str,
    typer.Option("--token", envvar="AMANA_TOKEN", help="your API token (or AMANA_TOKEN)"),
]
NameArg = Annotated[str, typer.Argument(help="the dataset's name")]


def _caller(work: Work, token: str, permission: Permission | None) -> Principal:
    """The person behind `token`; from here on the record names them, as over HTTP."""
    from archive.governance.auth import authenticate

    principal = authenticate(work.session, token)
    work.record = dataclasses.replace(
        work.record, actor=principal.token_id, actor_role=principal.role.value
    )
    if permission is not None:
        principal.require(permission)
    return principal


def _proportions(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep:
            raise typer.BadParameter("--split takes train=0.7,validation=0.15,test=0.15")
        out[name.strip()] = float(value)
    return out


@dataset_app.command("create")
def create(
    name: NameArg,
    token: TokenOpt,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            help="KEY=VALUE, repeatable: modality, body_part, sop_class, region, source, sex, "
            "age_min, age_max, study_date_from, study_date_to (shifted, YYYYMMDD), "
            "received_from, received_to (ISO), profile_version, manufacturer, model "
            "(unknown: series cataloged before these were recorded)",
        ),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="proportions")
    ] = "train=0.7,validation=0.15,test=0.15",
    parent: Annotated[str | None, typer.Option("--parent", help="the dataset it refines")] = None,
) -> None:
    """Freeze the studies a query selects as a new dataset, split by patient."""
    from amana.keys import load_key
    from archive import audit
    from archive.datasets.query import parse_where
    from archive.datasets.service import create_dataset, summary
    from archive.governance.auth import Permission

    try:
        query = parse_where(where or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    proportions = _proportions(split)
    secret = load_key(Settings().key_path).secret
    record = cli_record(
        audit.EventId.QUERY,
        audit.Action.CREATE,
        "dataset create",
        object_type="dataset",
        object_id=name,
    )
    with audited_command(record) as work:
        principal = _caller(work, token, Permission.DATASETS_WRITE)
        dataset = create_dataset(
            work.session,
            name=name,
            where=query,
            secret=secret,
            created_by=principal.user,
            now=datetime.now(UTC),
            proportions=proportions,
            parent=parent,
        )
        work.note(patients=dataset.patients, studies=dataset.studies, instances=dataset.instances)
        out = summary(dataset)
    typer.echo(json.dumps(out, indent=2))


@dataset_app.command("list")
def list_(token: TokenOpt, fmt: FormatOpt = "table") -> None:
    """Datasets: name, counts, whether sealed."""
    from archive import audit
    from archive.datasets.service import list_datasets
    from archive.governance.auth import Permission

    record = cli_record(
        audit.EventId.QUERY, audit.Action.EXECUTE, "dataset list", object_type="dataset"
    )
    with audited_command(record) as work:
        _caller(work, token, Permission.DATASETS_READ)
        rows = list_datasets(work.session)
        work.note(rows=len(rows))
    print_rows(rows, fmt, ["name", "patients", "studies", "instances", "sealed_at", "created_by"])


@dataset_app.command("seal")
def seal(name: NameArg, token: TokenOpt) -> None:
    """Hold the dataset's patients out for certification (certifier role): no training
    dataset created afterwards holds them, and only a certifier exports them."""
    from archive import audit
    from archive.datasets.service import seal_dataset
    from archive.governance.auth import Permission

    record = cli_record(
        audit.EventId.SECURITY_ALERT,
        audit.Action.UPDATE,
        "dataset seal",
        event_type=audit.EventType.USE_OF_RESTRICTED_FUNCTION,
        object_type="dataset",
        object_id=name,
    )
    with audited_command(record) as work:
        principal = _caller(work, token, Permission.DATASETS_SEAL)
        count = seal_dataset(work.session, name, sealed_by=principal.user, now=datetime.now(UTC))
        work.note(sealed_patients=count)
    typer.echo(f"sealed {count} patient(s) of {name}")


def _record_failure(work: Work, cause: BaseException | None) -> None:
    """An export that failed on the way (the DICOMweb server gone, a disk full) is an
    attempt all the same: recorded as a serious failure in a transaction of its own, since
    the unit of work rolled back. Refusals are recorded by the unit itself."""
    from anonymizer.errors import RetryableError
    from archive.audit.chain import AuditUnavailable, append
    from archive.audit.codes import Outcome

    if not isinstance(cause, RetryableError) or isinstance(cause, AuditUnavailable):
        return
    with catalog_session() as session:
        append(session, work.final(Outcome.SERIOUS_FAILURE, failed=cause.code))
        session.commit()


@dataset_app.command("export")
def export(
    name: NameArg,
    token: TokenOpt,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="the folder to write (resumable), or dicomweb+http(s)://host/path to send "
            "the instances to a DICOMweb server (STOW-RS)",
        ),
    ],
    card_dir: Annotated[
        Path | None,
        typer.Option(
            "--card-dir",
            help="with a DICOMweb target: the folder for the manifest, card and checksums",
        ),
    ] = None,
    k: Annotated[
        int | None,
        typer.Option(
            "--k", min=2, help="raise the k-anonymity threshold above the profiles' (never lower)"
        ),
    ] = None,
) -> None:
    """Write the dataset's instances, manifest, card and checksums. The k and l thresholds
    are those of the profiles that produced the data (`datasets:` section), the strictest."""
    from amana.archive_store import archive_store
    from archive import audit
    from archive.datasets.dicomweb import is_dicomweb
    from archive.datasets.runner import run_export

    settings = Settings()
    dicomweb = is_dicomweb(to)
    if dicomweb and card_dir is None:
        raise typer.BadParameter("a DICOMweb target needs --card-dir for the manifest and card")
    folder = card_dir if dicomweb and card_dir is not None else Path(to)
    record = cli_record(
        audit.EventId.EXPORT,
        audit.Action.READ,
        "dataset export",
        object_type="dataset",
        object_id=name,
    )
    began: list[Work] = []
    try:
        with audited_command(record) as work, Progress(transient=True) as bar:
            began.append(work)
            principal = _caller(work, token, None)
            task = bar.add_task(f"export {name}", total=None)
            run = run_export(
                work,
                name,
                principal,
                archive=archive_store(settings),
                profiles_dir=settings.profiles_dir,
                folder=folder,
                instances_to=to if dicomweb else None,
                k_at_least=k,
                on_start=lambda total: bar.update(task, total=total),
                progress=lambda n: bar.advance(task, n),
            )
    except typer.Exit as stop:
        if began:
            _record_failure(began[0], stop.__cause__)
        raise
    result = run.result
    typer.echo(
        f"exported {result.instances} instance(s) ({result.copied} copied) of {name}: "
        f"k={result.k} (threshold {run.k}), l={result.l_diversity} "
        f"(threshold {run.thresholds.l_diversity}), "
        f"{result.suppressed_patients} patient(s) suppressed for k-anonymity"
    )
