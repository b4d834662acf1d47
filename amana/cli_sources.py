"""`amana sources …`: the PACS allowed to send (AE title and address)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from amana.cli_common import FormatOpt, audited_command, cli_record, print_listing

if TYPE_CHECKING:
    from archive.audit import Action, AuditRecord

sources_app = typer.Typer(help="PACS allowed to send (AE title + address).", no_args_is_help=True)


def _node_record(action: Action, command: str, ae_title: str) -> AuditRecord:
    from archive import audit
    from archive.governance.sources import AE_TITLE

    return cli_record(
        audit.EventId.SECURITY_ALERT,
        action,
        command,
        event_type=audit.EventType.NETWORK_CONFIGURATION,
        object_type="node",
        # Configuration an admin typed, not patient data: kept even when refused.
        object_id=ae_title if AE_TITLE.match(ae_title) else None,
    )


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
    from archive.governance.sources import add_source

    with audited_command(_node_record(audit.Action.CREATE, "sources add", ae_title)) as work:
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
    from archive.governance.sources import list_sources

    columns = ["ae_title", "address", "profile", "site", "region", "enabled"]
    print_listing("sources list", "source", list_sources, fmt, columns)


@sources_app.command("remove")
def sources_remove(ae_title: str) -> None:
    """Stop accepting a PACS."""
    from archive import audit
    from archive.governance.sources import remove_source

    with audited_command(_node_record(audit.Action.DELETE, "sources remove", ae_title)) as work:
        remove_source(work.session, ae_title)
    typer.echo(f"source {ae_title} removed")
