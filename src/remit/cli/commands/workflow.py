"""`remit workflow`: draft workflow versions, review and approve them, list versions, retire."""

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
from remit.cli.parsing import format_duration, parse_duration, parse_step
from remit.wire.registry import WorkflowChange, WorkflowIn

__all__ = ["register"]

workflows = typer.Typer(help="Workflows: versioned, reviewed plans of what a task may do.", no_args_is_help=True)

COLUMNS: list[Column] = [
    ("id", lambda w: w.id),
    ("ref", lambda w: w.ref),
    ("state", lambda w: w.state),
    ("function", lambda w: w.function_id),
    ("max duration", lambda w: format_duration(w.max_duration_seconds)),
    ("steps", lambda w: [f"{s.tool}:{s.action}:{s.resource}" for s in w.steps]),
]

RefArgument = Annotated[str, typer.Argument(help="Workflow version: id or NAME@VERSION.")]
StepHelp = "TOOL:ACTION:RESOURCE-PATTERN the workflow needs. Repeatable."
DurationHelp = "Maximum task duration: 90s, 30m, 2h, 1d, 1h30m (at most 7 days)."


def register(app: typer.Typer) -> None:
    app.add_typer(workflows, name="workflow")


@workflows.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Workflow name; a new version is created if it exists.")],
    function: Annotated[str, typer.Option("--function", help="Business function: id or name.")],
    step: Annotated[list[str], typer.Option("--step", help=StepHelp)],
    max_duration: Annotated[str, typer.Option("--max-duration", help=DurationHelp)],
    description: Annotated[str, typer.Option("--description", help="What the workflow does.")] = "",
) -> None:
    """Create the next version of a workflow as a draft (approve it before use)."""
    body = WorkflowIn(
        name=name,
        function=function,
        description=description,
        steps=[parse_step(s) for s in step],
        max_duration_seconds=parse_duration(max_duration),
    )
    cli = state(ctx)
    with cli.client() as client:
        created = client.create_workflow(body)
    cli.printer.record(created)
    cli.printer.note(f"review it, then: remit workflow approve {created.ref} --expected-hash {created.content_hash}")


@workflows.command("list")
def list_(ctx: typer.Context, limit: LimitOption = None, after: AfterOption = None) -> None:
    """List workflow versions."""
    list_items(ctx, lambda c, n, a: c.list_workflows(limit=n, after=a), COLUMNS, limit=limit, after=after)


@workflows.command("show")
def show(ctx: typer.Context, ref: RefArgument) -> None:
    """Show one workflow version."""
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.get_workflow(ref))


@workflows.command("versions")
def versions(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Workflow name.")]) -> None:
    """List every version of a workflow, oldest first."""
    cli = state(ctx)
    with cli.client() as client:
        found = client.workflow_versions(name)
    if cli.printer.is_json:
        cli.printer.json(found)  # the wire form: a list, oldest first
    else:
        cli.printer.rows(found, COLUMNS)


@workflows.command("change")
def change(
    ctx: typer.Context,
    ref: RefArgument,
    description: Annotated[str | None, typer.Option("--description", help="New description.")] = None,
    step: Annotated[list[str] | None, typer.Option("--step", help="Replace the steps. " + StepHelp)] = None,
    max_duration: Annotated[str | None, typer.Option("--max-duration", help=DurationHelp)] = None,
    expected_revision: RevisionOption = None,
) -> None:
    """Change a draft; an approved version is immutable (add a new version instead)."""
    given = require_change(
        description=description,
        steps=[parse_step(s) for s in step] if step else None,
        max_duration_seconds=None if max_duration is None else parse_duration(max_duration),
        expected_revision=expected_revision,
    )
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.change_workflow(ref, WorkflowChange.model_validate(given)))


@workflows.command("approve")
def approve(
    ctx: typer.Context,
    ref: RefArgument,
    expected_hash: Annotated[
        str | None,
        typer.Option("--expected-hash", help="The content hash you reviewed; refused if the draft changed since."),
    ] = None,
) -> None:
    """Approve a draft; the previously approved version is superseded and its tasks end."""
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.approve_workflow(ref, expected_hash=expected_hash))


@workflows.command("retire")
def retire(ctx: typer.Context, ref: RefArgument, reason: ReasonOption) -> None:
    """Retire a workflow version: no new tasks, and running tasks on it end."""
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.retire_workflow(ref, reason=reason))
