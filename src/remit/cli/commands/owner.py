"""`remit owner`: register, list, show, change and offboard accountable owners."""

from __future__ import annotations

from typing import Annotated

import typer

from remit.cli.commands._shared import (
    AfterOption,
    LimitOption,
    ReasonOption,
    RevisionOption,
    list_items,
    require_change,
)
from remit.cli.context import state
from remit.cli.output import Column
from remit.cli.parsing import parse_human_identity
from remit.wire.registry import OwnerChange, OwnerIn

__all__ = ["register"]

owners = typer.Typer(help="Accountable owners: the humans answerable for agents.", no_args_is_help=True)

COLUMNS: list[Column] = [
    ("id", lambda o: o.id),
    ("name", lambda o: o.name),
    ("email", lambda o: o.email),
    ("status", lambda o: o.status),
]

HumanIdentityOption = Annotated[
    list[str] | None,
    typer.Option(
        "--human-identity",
        help="ISSUER#SUBJECT the owner signs in with; such an identity can never be bound to an agent. Repeatable.",
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(owners, name="owner")


@owners.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Display name.")],
    email: Annotated[str, typer.Argument(help="Email address; unique, and usable as the owner's reference.")],
    human_identity: HumanIdentityOption = None,
) -> None:
    """Register an accountable owner."""
    body = OwnerIn(name=name, email=email, human_identities=[parse_human_identity(h) for h in human_identity or []])
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.create_owner(body))


@owners.command("list")
def list_(ctx: typer.Context, limit: LimitOption = None, after: AfterOption = None) -> None:
    """List owners."""
    list_items(ctx, lambda c, n, a: c.list_owners(limit=n, after=a), COLUMNS, limit=limit, after=after)


@owners.command("show")
def show(ctx: typer.Context, ref: Annotated[str, typer.Argument(help="Owner id or email.")]) -> None:
    """Show one owner."""
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.get_owner(ref))


@owners.command("change")
def change(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Owner id or email.")],
    name: Annotated[str | None, typer.Option("--name", help="New display name.")] = None,
    email: Annotated[str | None, typer.Option("--email", help="New email address.")] = None,
    human_identity: HumanIdentityOption = None,
    expected_revision: RevisionOption = None,
) -> None:
    """Change an owner; options not given stay as they are (--human-identity replaces the list)."""
    given = require_change(
        name=name,
        email=email,
        human_identities=[parse_human_identity(h) for h in human_identity] if human_identity else None,
        expected_revision=expected_revision,
    )
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.change_owner(ref, OwnerChange.model_validate(given)))


@owners.command("offboard")
def offboard(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Owner id or email.")],
    reason: ReasonOption,
) -> None:
    """Offboard an owner: every agent they own is suspended and its credentials revoked."""
    cli = state(ctx)
    with cli.client() as client:
        result = client.offboard_owner(ref, reason=reason)
    if cli.printer.is_json:
        cli.printer.json(result)
        return
    cli.printer.record(result.owner)
    suspended = ", ".join(result.suspended_agents) or "none"
    cli.printer.note(f"suspended agents: {suspended}")
