"""`amana sources …`: the PACS allowed to send (AE title and address)."""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from amana.cli_common import FormatOpt, audited_command, cli_record, print_listing
from amana.startup import load as load_settings

if TYPE_CHECKING:
    from archive.audit import Action, AuditRecord

sources_app = typer.Typer(help="PACS allowed to send (AE title + address).", no_args_is_help=True)


CertSha256Opt = Annotated[
    str | None,
    typer.Option(
        "--cert-sha256",
        help="SHA-256 of the client certificate it must present on the TLS port ('' clears)",
    ),
]
CertCnOpt = Annotated[
    str | None,
    typer.Option("--cert-cn", help="subject CN its client certificate must carry ('' clears)"),
]
CertFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--cert-file",
        exists=True,
        dir_okay=False,
        help="the source's client certificate (PEM): binds its SHA-256",
    ),
]


def _fingerprint(cert_file: Path | None, cert_sha256: str | None) -> str | None:
    """The fingerprint to bind: typed, or computed from the PEM the hospital sent."""
    if cert_file is None:
        return cert_sha256
    if cert_sha256 is not None:
        raise typer.BadParameter("give --cert-file or --cert-sha256, not both")
    try:
        der = ssl.PEM_cert_to_DER_cert(cert_file.read_text(encoding="ascii"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise typer.BadParameter("--cert-file is not a PEM certificate") from exc
    return hashlib.sha256(der).hexdigest()


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
    cert_sha256: CertSha256Opt = None,
    cert_cn: CertCnOpt = None,
    cert_file: CertFileOpt = None,
) -> None:
    """Allow a PACS to send; its studies get --profile (default: AMANA_PROFILE) and --region
    (default: the region the profile derives from the header). Both must exist. With a
    certificate (--cert-file, --cert-sha256 or --cert-cn) it may send only over DICOM TLS,
    presenting that certificate."""
    from archive import audit
    from archive.governance.sources import add_source, registration_detail

    fingerprint = _fingerprint(cert_file, cert_sha256)

    with audited_command(_node_record(audit.Action.CREATE, "sources add", ae_title)) as work:
        src = add_source(
            work.session,
            ae_title=ae_title,
            address=address,
            profile_name=profile,
            site=site,
            region=region,
            profiles_dir=load_settings().profiles_dir,
            cert_sha256=fingerprint,
            cert_cn=cert_cn,
        )
        work.note(**registration_detail(src))
        title, network = src.ae_title, src.address
    typer.echo(f"source {title} from {network} registered")


@sources_app.command("edit")
def sources_edit(
    ae_title: Annotated[str, typer.Argument(help="the PACS's calling AE title")],
    profile: Annotated[str | None, typer.Option(help="profile ('' for the default)")] = None,
    region: Annotated[str | None, typer.Option(help="region ('' for the header's)")] = None,
    address: Annotated[str | None, typer.Option(help="IP address or network")] = None,
    site: Annotated[str | None, typer.Option(help="hospital or site label")] = None,
    cert_sha256: CertSha256Opt = None,
    cert_cn: CertCnOpt = None,
    cert_file: CertFileOpt = None,
) -> None:
    """Change a source; its instances not yet processed get the new profile and region."""
    from archive import audit
    from archive.governance.sources import edit_source

    fingerprint = _fingerprint(cert_file, cert_sha256)

    with audited_command(_node_record(audit.Action.UPDATE, "sources edit", ae_title)) as work:
        src, changes = edit_source(
            work.session,
            ae_title,
            load_settings().profiles_dir,
            profile_name=profile,
            region=region,
            address=address,
            site=site,
            cert_sha256=fingerprint,
            cert_cn=cert_cn,
        )
        work.note(object_id=src.ae_title, changes=changes)
        title = src.ae_title
    typer.echo(f"source {title}: {', '.join(sorted(changes)) or 'nothing'} changed")


def _set_enabled(ae_title: str, enabled: bool) -> None:
    from archive import audit
    from archive.governance.sources import set_enabled

    command = "sources enable" if enabled else "sources disable"
    with audited_command(_node_record(audit.Action.UPDATE, command, ae_title)) as work:
        src = set_enabled(work.session, ae_title, enabled)
        work.note(object_id=src.ae_title, enabled=enabled)
        title = src.ae_title
    typer.echo(f"source {title} {'enabled' if enabled else 'disabled'}")


@sources_app.command("disable")
def sources_disable(ae_title: str) -> None:
    """Refuse a PACS's associations (like an unknown one) without forgetting it."""
    _set_enabled(ae_title, False)


@sources_app.command("enable")
def sources_enable(ae_title: str) -> None:
    """Accept a disabled PACS again."""
    _set_enabled(ae_title, True)


@sources_app.command("list")
def sources_list(fmt: FormatOpt = "table") -> None:
    """Registered sources."""
    from archive.governance.sources import list_sources

    columns = ["ae_title", "address", "profile", "site", "region", "enabled"]
    columns += ["cert_sha256", "cert_cn"]
    print_listing("sources list", "source", list_sources, fmt, columns)


@sources_app.command("remove")
def sources_remove(ae_title: str) -> None:
    """Forget a PACS (refused while its instances are still being processed)."""
    from archive import audit
    from archive.governance.sources import remove_source

    with audited_command(_node_record(audit.Action.DELETE, "sources remove", ae_title)) as work:
        remove_source(work.session, ae_title)
    typer.echo(f"source {ae_title} removed")
