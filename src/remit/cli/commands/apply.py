"""`remit apply -f org.yaml`: show the plan against the server, then apply it idempotently (unless --dry-run)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from rich.markup import escape

from remit.cli.context import state
from remit.cli.orgfile import Action, ServerState, Step, execute, load_org_file, plan
from remit.cli.output import Printer
from remit.sdk.client import RemitClient

__all__ = ["apply_file", "register"]

_MARK = {Action.CREATE: "[green]+[/]", Action.CHANGE: "[yellow]~[/]", Action.UNCHANGED: "[dim]=[/]"}


def register(app: typer.Typer) -> None:
    app.command("apply")(apply)


def apply(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Option("--file", "-f", help="Organisation file (YAML): owners, functions, tools, workflows, ...")
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")] = False,
) -> None:
    """Apply an organisation file: print the diff (create / change / unchanged), then apply it."""
    cli = state(ctx)
    with cli.client() as client:
        apply_file(client, file, printer=cli.printer, dry_run=dry_run)


def apply_file(client: RemitClient, path: Path, *, printer: Printer, dry_run: bool, quiet: bool = False) -> list[Step]:
    """Parse (nothing is sent if the file is invalid), plan against the server, print, then execute."""
    org = load_org_file(path)
    steps = plan(org, ServerState.fetch(client))
    counts = Counter(step.action for step in steps)
    pending = counts[Action.CREATE] + counts[Action.CHANGE]
    if not quiet and not printer.is_json:
        _print_plan(printer, path, steps, counts)
    if pending and not dry_run:
        execute(steps, client)
    if quiet:
        return steps
    if printer.is_json:
        printer.json(
            {
                "file": str(path),
                "dry_run": dry_run,
                "applied": bool(pending) and not dry_run,
                "summary": {action.value: counts[action] for action in Action},
                "plan": [step.as_dict() for step in steps],
            }
        )
    elif not pending:
        printer.note(f"Nothing to change: the server already matches {escape(str(path))}.")
    elif dry_run:
        printer.note("Dry run: nothing was applied.")
    else:
        printer.note(f"Applied: {counts[Action.CREATE]} created, {counts[Action.CHANGE]} changed.")
    return steps


def _print_plan(printer: Printer, path: Path, steps: list[Step], counts: Counter[Action]) -> None:
    printer.note(f"Plan for {escape(str(path))}:")
    for step in steps:
        line = f"  {_MARK[step.action]} {step.kind} {escape(step.key)}"
        if step.changes:
            line += ": " + escape("; ".join(step.changes))
        printer.note(line)
    printer.note(
        f"{counts[Action.CREATE]} to create, {counts[Action.CHANGE]} to change, {counts[Action.UNCHANGED]} unchanged."
    )
