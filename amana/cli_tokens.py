"""`amana token …`: API bearer tokens of named users, minted and revoked on the server."""

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

token_app = typer.Typer(
    help="API bearer tokens of named users (admin; auditors list them).", no_args_is_help=True
)

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
    user: Annotated[str, typer.Option(help="the user who will hold it (`amana user add`)")],
    expires: Annotated[str, typer.Option(help="lifetime such as 90d or 12h")] = "90d",
    label: Annotated[str | None, typer.Option(help="what the token is for")] = None,
) -> None:
    """Mint a token for a user, with the user's role; printed once, only its hash is kept."""
    from archive import audit
    from archive.governance.auth import parse_lifetime
    from archive.governance.users import mint_for

    # Inside the unit, so that a refused user or expiry is recorded like any refused change.
    with audited_command(_token_record(audit.Action.CREATE, "token create")) as work:
        minted = mint_for(
            work.session,
            name=user,
            by=None,
            created_by=cli_actor(),
            lifetime=parse_lifetime(expires),
            label=label,
        )
        work.note(object_id=minted.token_id, role=minted.role.value, user=minted.user)
    typer.echo(minted.token)


@token_app.command("list")
def token_list(fmt: FormatOpt = "table") -> None:
    """Token ids, holders, roles, expiry and last use (never the secrets)."""
    from archive.governance.auth import list_tokens

    columns = [
        "token_id",
        "user",
        "role",
        "label",
        "created_by",
        "expires_at",
        "last_used_at",
        "revoked",
        "expired",
    ]
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
