"""`remit task`: list, show and end tasks with the operator token (ending one revokes all its credentials)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from remit.cli.commands._shared import AfterOption, LimitOption, list_items
from remit.cli.context import state
from remit.cli.output import Column

__all__ = ["register"]

tasks = typer.Typer(help="Tasks: what agents declared, their state, and ending them.", no_args_is_help=True)

COLUMNS: list[Column] = [
    ("id", lambda t: t.id),
    ("state", lambda t: t.state),
    ("agent", lambda t: t.agent_id),
    ("workflow", lambda t: t.workflow),
    ("environment", lambda t: t.environment),
    ("audience", lambda t: t.audience),
    ("parent", lambda t: t.parent_id),
    ("deadline", lambda t: t.deadline),
]


class TaskStateFilter(StrEnum):
    """The states a task can be listed by."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REVOKED = "revoked"


class Outcome(StrEnum):
    """How an operator may end a task."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


IdArgument = Annotated[str, typer.Argument(help="Task id (tsk_…).")]


def register(app: typer.Typer) -> None:
    app.add_typer(tasks, name="task")


@tasks.command("list")
def list_(
    ctx: typer.Context,
    task_state: Annotated[
        TaskStateFilter | None, typer.Option("--state", help="Only tasks in this state.", show_default=False)
    ] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Only tasks of this agent (agent id).")] = None,
    limit: LimitOption = None,
    after: AfterOption = None,
) -> None:
    """List tasks, oldest first; filter by state and agent."""
    wanted = None if task_state is None else task_state.value
    list_items(
        ctx,
        lambda c, n, a: c.list_tasks(state=wanted, agent=agent, limit=n, after=a),
        COLUMNS,
        limit=limit,
        after=after,
    )


@tasks.command("show")
def show(ctx: typer.Context, task_id: IdArgument) -> None:
    """Show one task."""
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.get_task(task_id))


@tasks.command("end")
def end(
    ctx: typer.Context,
    task_id: IdArgument,
    outcome: Annotated[Outcome, typer.Option("--outcome", help="completed, failed or cancelled.")],
    reason: Annotated[str, typer.Option("--reason", help="Why: recorded in the audit trail.")] = "",
) -> None:
    """End a task: every credential of it and of its descendant tasks is revoked at once."""
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.end_task_as_operator(task_id, outcome.value, reason=reason))
