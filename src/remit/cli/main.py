"""The `remit` typer application: global options, the error-to-exit-code mapping, and the command groups."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pydantic import ValidationError
from typer.core import TyperGroup

from remit.cli.commands import (
    agent,
    apply,
    approvals,
    audit,
    credential,
    function,
    grant,
    keys,
    owner,
    policy,
    server,
    task,
    tool,
    workflow,
)
from remit.cli.context import DEFAULT_TOKEN_FILE, CliState, invalid_from_validation
from remit.cli.output import OutputFormat, Printer, exit_code_for
from remit.errors import RemitError
from remit.sdk.client import DEFAULT_SERVER

if TYPE_CHECKING:
    # The click that typer drives (typer vendors it); only the type checker needs the name.
    from typer._click.core import Context as ClickContext

__all__ = ["app"]


class _RemitGroup(TyperGroup):
    """The root group: any RemitError (or input validation error) below it becomes one line and an exit code."""

    def invoke(self, ctx: ClickContext) -> object:
        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            error: RemitError = invalid_from_validation(exc)
        except RemitError as exc:
            error = exc
        Printer().error(error)
        raise typer.Exit(exit_code_for(error))


app = typer.Typer(
    cls=_RemitGroup,
    name="remit",
    help="Remit: governed, per-task credentials for AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    server_url: Annotated[
        str, typer.Option("--server", envvar="REMIT_SERVER", help="Base URL of the Remit server.")
    ] = DEFAULT_SERVER,
    token_file: Annotated[
        Path, typer.Option("--token-file", envvar="REMIT_TOKEN_FILE", help="File holding the operator token.")
    ] = DEFAULT_TOKEN_FILE,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="REMIT_TOKEN",
            help="Operator token. Prefer REMIT_TOKEN or the token file: arguments are visible to other users.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="Print tables, or the wire JSON as one document.")
    ] = OutputFormat.TABLE,
) -> None:
    """Remit: governed, per-task credentials for AI agents."""
    ctx.obj = CliState(server=server_url, token=token, token_file=token_file, printer=Printer(output))


for _module in (
    server,
    keys,
    owner,
    function,
    agent,
    tool,
    workflow,
    grant,
    policy,
    apply,
    task,
    credential,
    audit,
    approvals,
):
    _module.register(app)
