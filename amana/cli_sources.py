"""`amana sources …`: the PACS allowed to send (AE title and address)."""

from __future__ import annotations

from typing import Annotated

import typer

from amana.cli_common import FormatOpt, audited_command, cli_record, print_rows

sources_app = typer.Typer(help="PACS allowed to send (AE title + address).", no_args_is_help=True)


@sources_app.command("add")
def sources_add(
    ae_title: Annotated[str, typer.Argument(help="the PACS's calling AE title")],
    address: Annotated[str, typer.Argument(help="IP address or network, e.g. 10.1.2.0/24")],
    profile: Annotated[str | None, typer.Option(help="profile for this source")] = None,
    site: Annotated[str | None, typer.Option(help="hospital or site label")] = None,
    region: Annotated[str | None, typer.Option(help="region recorded for its studies")] = None,
) -> None:
    """Allow a PACS to send."""
    from archive import audit
    from archive.governance.sources import AE_TITLE, add_source

    record = cli_record(
        audit.EventId.SECURITY_ALERT,
        audit.Action.CREATE,
        "sources add",
        event_type=audit.EventType.NETWORK_CONFIGURATION,
        object_type="node",
        # Configuration an admin typed, not patient data: kept even when refused.
        object_id=ae_title if AE_TITLE.match(ae_title) else None,
    )
    with audited_command(record) as work:
        src = add_source(
            work.session,
            ae_title=ae_title,
            address=address,
            profile_name=profile,
            site=site,
            region=region,
        )
        work.note(object_id=src.ae_title, address=src.address)
        title, network = src.ae_title, src.address
    typer.echo(f"source {title} from {network} registered")


@sources_app.command("list")
def sources_list(fmt: FormatOpt = "table") -> None:
    """Registered sources."""
    from archive import audit
    from archive.governance.sources import list_sources

    record = cli_record(
        audit.EventId.QUERY, audit.Action.EXECUTE, "sources list", object_type="source"
    )
    with audited_command(record) as work:
        rows = list_sources(work.session)
        work.note(rows=len(rows))
    print_rows(rows, fmt, ["ae_title", "address", "profile", "site", "region", "enabled"])


@sources_app.command("remove")
def sources_remove(ae_title: str) -> None:
    """Stop accepting a PACS."""
    from archive import audit
    from archive.governance.sources import AE_TITLE, remove_source

    record = cli_record(
        audit.EventId.SECURITY_ALERT,
        audit.Action.DELETE,
        "sources remove",
        event_type=audit.EventType.NETWORK_CONFIGURATION,
        object_type="node",
        object_id=ae_title if AE_TITLE.match(ae_title) else None,
    )
    with audited_command(record) as work:
        remove_source(work.session, ae_title)
    typer.echo(f"source {ae_title} removed")
