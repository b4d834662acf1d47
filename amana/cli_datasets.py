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

from amana.cli_common import FormatOpt, audited_command, cli_record, print_rows
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
            "received_from, received_to (ISO), profile_version",
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


@dataset_app.command("export")
def export(
    name: NameArg,
    token: TokenOpt,
    to: Annotated[Path, typer.Option("--to", help="the folder to write (resumable)")],
    k: Annotated[int, typer.Option("--k", min=2, help="k-anonymity threshold")] = 5,
) -> None:
    """Write the dataset's instances, manifest, card and checksums to a folder."""
    from amana.archive_store import archive_store
    from archive import audit
    from archive.datasets.card import load_reference
    from archive.datasets.export import export_dataset
    from archive.datasets.service import (
        archive_rows,
        check_export,
        dataset_rows,
        get_dataset,
    )

    settings = Settings()
    record = cli_record(
        audit.EventId.EXPORT,
        audit.Action.READ,
        "dataset export",
        object_type="dataset",
        object_id=name,
    )
    with audited_command(record) as work:
        principal = _caller(work, token, None)
        dataset = get_dataset(work.session, name)
        sealed = check_export(work.session, dataset, principal)
        rows = dataset_rows(work.session, dataset)
        whole = archive_rows(work.session)
        with Progress(transient=True) as bar:
            task = bar.add_task(f"export {name}", total=len(rows))
            result = export_dataset(
                name,
                rows,
                whole,
                load_reference(),
                archive=archive_store(settings),
                target=to,
                k_threshold=k,
                progress=lambda n: bar.advance(task, n),
            )
        work.note(
            sealed=sealed,
            instances=result.instances,
            copied=result.copied,
            patients=dataset.patients,
            k=result.k,
            k_threshold=k,
            generalization=list(result.generalization),
            suppressed_patients=result.suppressed_patients,
        )
    typer.echo(
        f"exported {result.instances} instance(s) ({result.copied} copied) of {name}: "
        f"k={result.k}, l={result.l_diversity}, "
        f"{result.suppressed_patients} patient(s) suppressed for k-anonymity"
    )
