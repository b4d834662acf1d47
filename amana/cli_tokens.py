"""`amana token …`: API bearer tokens, minted and revoked on the server (admin)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

import typer

from amana.cli_common import (
    FormatOpt,
    audited_command,
    cli_actor,
    cli_record,
    print_listing,
)
from amana.errors import RejectError

if TYPE_CHECKING:
    from archive.audit import Action, AuditRecord

token_app = typer.Typer(help="API bearer tokens (admin).", no_args_is_help=True)

# A token's public id; only an id of this shape goes in the record, never a pasted secret.
TOKEN_ID = re.compile(r"^tok_[0-9a-f]{12}$")


def _token_record(action: Action, command: str, **fields: Any) -> AuditRecord:
    from archive import audit

    return cli_record(
        audit.EventId.SECURITY_ALERT,
        action,
        command,
        event_type=audit.EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
        object_type="token",
        **fields,
    )


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="auditor, steward or admin")],
    label: Annotated[str | None, typer.Option(help="who or what the token is for")] = None,
) -> None:
    """Mint a token and print it (shown once; only its hash is stored)."""
    from archive import audit
    from archive.governance.auth import create_token, parse_role

    # Inside the unit, so that a refused role is recorded like any refused change.
    with audited_command(_token_record(audit.Action.CREATE, "token create")) as work:
        parsed = parse_role(role)
        token_id, token = create_token(
            work.session, role=parsed, created_by=cli_actor(), label=label
        )
        work.note(object_id=token_id, role=parsed.value)
    typer.echo(token)


@token_app.command("list")
def token_list(fmt: FormatOpt = "table") -> None:
    """Token ids, roles and labels (never the secrets)."""
    from archive.governance.auth import list_tokens

    columns = ["token_id", "role", "label", "created_by", "created_at", "revoked"]
    print_listing("token list", "token", list_tokens, fmt, columns)


@token_app.command("revoke")
def token_revoke(token_id: str) -> None:
    """Revoke a token at once."""
    from archive import audit
    from archive.governance.auth import revoke_token

    well_formed = bool(TOKEN_ID.match(token_id))
    record = _token_record(
        audit.Action.DELETE, "token revoke", object_id=token_id if well_formed else None
    )
    with audited_command(record) as work:
        if not well_formed:
            raise RejectError("no such token", code="not_found")
        revoke_token(work.session, token_id)
    typer.echo(f"revoked {token_id}")
