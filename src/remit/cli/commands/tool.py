"""`remit tool`: register tools with their actions (risk classes) and resources (sensitivities)."""

from __future__ import annotations

from typing import Annotated

import typer

from remit.cli.commands._shared import AfterOption, LimitOption, RevisionOption, list_items, require_change
from remit.cli.context import state
from remit.cli.output import Column
from remit.cli.parsing import parse_action, parse_resource
from remit.wire.registry import ToolChange, ToolIn

__all__ = ["register"]

tools = typer.Typer(help="Tools, their actions (risk classes) and resources (sensitivities).", no_args_is_help=True)

COLUMNS: list[Column] = [
    ("id", lambda t: t.id),
    ("name", lambda t: t.name),
    ("actions", lambda t: [f"{a.name}:{a.risk_class}" for a in t.actions]),
    (
        "resources",
        lambda t: [
            f"{r.pattern}:{r.sensitivity}" + (f":{r.environment}" if r.environment else "") for r in t.resources
        ],
    ),
]

ActionHelp = "NAME:RISK, RISK one of read, write, deploy, payment, export, admin. Repeatable."
ResourceHelp = "PATTERN:SENSITIVITY[:ENV], SENSITIVITY one of public, internal, confidential, restricted. Repeatable."


def register(app: typer.Typer) -> None:
    app.add_typer(tools, name="tool")


@tools.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Machine name, e.g. github.")],
    action: Annotated[list[str], typer.Option("--action", help=ActionHelp)],
    resource: Annotated[list[str], typer.Option("--resource", help=ResourceHelp)],
    description: Annotated[str, typer.Option("--description", help="What the tool is.")] = "",
) -> None:
    """Register a tool."""
    body = ToolIn(
        name=name,
        description=description,
        actions=[parse_action(a) for a in action],
        resources=[parse_resource(r) for r in resource],
    )
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.create_tool(body))


@tools.command("list")
def list_(ctx: typer.Context, limit: LimitOption = None, after: AfterOption = None) -> None:
    """List tools."""
    list_items(ctx, lambda c, n, a: c.list_tools(limit=n, after=a), COLUMNS, limit=limit, after=after)


@tools.command("show")
def show(ctx: typer.Context, ref: Annotated[str, typer.Argument(help="Tool id or name.")]) -> None:
    """Show one tool."""
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.get_tool(ref))


@tools.command("change")
def change(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Tool id or name.")],
    description: Annotated[str | None, typer.Option("--description", help="New description.")] = None,
    action: Annotated[list[str] | None, typer.Option("--action", help="Replace the actions. " + ActionHelp)] = None,
    resource: Annotated[
        list[str] | None, typer.Option("--resource", help="Replace the resources. " + ResourceHelp)
    ] = None,
    expected_revision: RevisionOption = None,
) -> None:
    """Change a tool; --action and --resource replace the whole list they name."""
    given = require_change(
        description=description,
        actions=[parse_action(a) for a in action] if action else None,
        resources=[parse_resource(r) for r in resource] if resource else None,
        expected_revision=expected_revision,
    )
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.change_tool(ref, ToolChange.model_validate(given)))
