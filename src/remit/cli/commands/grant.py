"""`remit grant`: standing grants (only reads of public or internal resources may be standing)."""

from __future__ import annotations

from typing import Annotated

import typer

from remit.cli.commands._shared import AfterOption, LimitOption, list_items
from remit.cli.context import state
from remit.cli.output import Column
from remit.wire.registry import GrantIn

__all__ = ["register"]

grants = typer.Typer(
    help="Standing grants: only read actions on public or internal resources may be standing.", no_args_is_help=True
)

COLUMNS: list[Column] = [
    ("id", lambda g: g.id),
    ("agent", lambda g: g.agent_id),
    ("tool", lambda g: g.tool),
    ("action", lambda g: g.action),
    ("resource", lambda g: g.resource),
    ("reason", lambda g: g.reason),
]


def register(app: typer.Typer) -> None:
    app.add_typer(grants, name="grant")


@grants.command("add")
def add(
    ctx: typer.Context,
    agent: Annotated[str, typer.Option("--agent", help="Agent id or name.")],
    tool: Annotated[str, typer.Option("--tool", help="Tool name.")],
    action: Annotated[str, typer.Option("--action", help="A read action of the tool.")],
    resource: Annotated[str, typer.Option("--resource", help="Resource pattern (public or internal only).")],
    reason: Annotated[str, typer.Option("--reason", help="Why the agent needs this standing read.")],
) -> None:
    """Create a standing grant; anything but a low-risk read is refused (invalid_request)."""
    body = GrantIn(agent=agent, tool=tool, action=action, resource=resource, reason=reason)
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.create_grant(body))


@grants.command("list")
def list_(ctx: typer.Context, limit: LimitOption = None, after: AfterOption = None) -> None:
    """List standing grants."""
    list_items(ctx, lambda c, n, a: c.list_grants(limit=n, after=a), COLUMNS, limit=limit, after=after)


@grants.command("delete")
def delete(ctx: typer.Context, grant_id: Annotated[str, typer.Argument(metavar="ID", help="Grant id.")]) -> None:
    """Delete a standing grant."""
    cli = state(ctx)
    with cli.client() as client:
        client.delete_grant(grant_id)
    if cli.printer.is_json:
        cli.printer.json({"deleted": grant_id})
    else:
        cli.printer.note(f"deleted grant {grant_id}")
