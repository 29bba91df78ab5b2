"""`remit function`: register, list, show and change business functions (why agents exist)."""

from __future__ import annotations

from typing import Annotated

import typer

from remit.cli.commands._shared import AfterOption, LimitOption, RevisionOption, list_items, require_change
from remit.cli.context import state
from remit.cli.output import Column
from remit.wire.registry import FunctionChange, FunctionIn

__all__ = ["register"]

functions = typer.Typer(help="Business functions: why agents exist.", no_args_is_help=True)

COLUMNS: list[Column] = [
    ("id", lambda f: f.id),
    ("name", lambda f: f.name),
    ("owner", lambda f: f.owner_id),
    ("description", lambda f: f.description),
]


def register(app: typer.Typer) -> None:
    app.add_typer(functions, name="function")


@functions.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Machine name: a-z, 0-9, '.', '_', '-'.")],
    owner: Annotated[str, typer.Option("--owner", help="Owning owner: id or email.")],
    description: Annotated[str, typer.Option("--description", help="What the function is for.")],
) -> None:
    """Register a business function."""
    body = FunctionIn(name=name, owner=owner, description=description)
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.create_function(body))


@functions.command("list")
def list_(ctx: typer.Context, limit: LimitOption = None, after: AfterOption = None) -> None:
    """List business functions."""
    list_items(ctx, lambda c, n, a: c.list_functions(limit=n, after=a), COLUMNS, limit=limit, after=after)


@functions.command("show")
def show(ctx: typer.Context, ref: Annotated[str, typer.Argument(help="Function id or name.")]) -> None:
    """Show one business function."""
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.get_function(ref))


@functions.command("change")
def change(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Function id or name.")],
    description: Annotated[str | None, typer.Option("--description", help="New description.")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="New owning owner: id or email.")] = None,
    expected_revision: RevisionOption = None,
) -> None:
    """Change a business function; options not given stay as they are."""
    given = require_change(description=description, owner=owner, expected_revision=expected_revision)
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.change_function(ref, FunctionChange.model_validate(given)))
