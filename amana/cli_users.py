"""`amana user …`: the people who hold tokens, managed on the server.

This is where the first admin comes from: `amana user add NAME --role admin` needs no token,
because whoever runs it already holds the server (and is recorded as `cli:<login>`). Over
HTTP only an admin manages users.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from amana.cli_common import FormatOpt, audited_command, cli_actor, cli_record, print_listing

if TYPE_CHECKING:
    from archive.audit import Action, AuditRecord

user_app = typer.Typer(
    help="Users who hold API tokens (admin; auditors list them).", no_args_is_help=True
)


def _user_record(action: Action, command: str, name: str, **fields: Any) -> AuditRecord:
    from archive import audit
    from archive.governance.users import USER_NAME

    return cli_record(
        audit.EventId.SECURITY_ALERT,
        action,
        command,
        event_type=audit.EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
        object_type="user",
        # A staff name the operator typed; a malformed one is left out of the record.
        object_id=name if USER_NAME.match(name) else None,
        **fields,
    )


@user_app.command("add")
def user_add(
    name: str,
    role: Annotated[str, typer.Option(help="auditor, steward, admin, researcher or certifier")],
) -> None:
    """Add a user with one role; then `amana token create --user NAME`."""
    from archive import audit
    from archive.governance.auth import parse_role
    from archive.governance.users import add_user

    with audited_command(_user_record(audit.Action.CREATE, "user add", name)) as work:
        parsed = parse_role(role)
        add_user(work.session, name=name, role=parsed, created_by=cli_actor())
        work.note(role=parsed.value)
    typer.echo(f"added {name} ({parsed.value})")


@user_app.command("list")
def user_list(fmt: FormatOpt = "table") -> None:
    """Users: name, role, tokens, disabled or not, last use."""
    from archive.governance.users import list_users

    columns = ["id", "name", "role", "disabled", "live_tokens", "last_used_at", "created_by"]
    print_listing("user list", "user", list_users, fmt, columns)


@user_app.command("role")
def user_role(name: str, role: str) -> None:
    """Give a user another role; all their tokens carry it from their next request."""
    from archive import audit
    from archive.governance.auth import parse_role
    from archive.governance.users import set_role

    with audited_command(_user_record(audit.Action.UPDATE, "user role", name)) as work:
        parsed = parse_role(role)
        set_role(work.session, name, parsed, None)
        work.note(role=parsed.value)
    typer.echo(f"{name} is now {parsed.value}")


@user_app.command("disable")
def user_disable(name: str) -> None:
    """Disable a user: every token of theirs is refused from its next request on."""
    from archive import audit
    from archive.governance.users import disable_user

    with audited_command(_user_record(audit.Action.UPDATE, "user disable", name)) as work:
        disable_user(work.session, name)
        work.note(disabled=True)
    typer.echo(f"disabled {name}")
