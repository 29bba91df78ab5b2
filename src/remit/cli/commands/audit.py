"""`remit trace` and `remit audit`: a task's timeline, chain verification, tail, OCSF export and checkpoints.

`remit audit verify` exits 0 when the chain is whole and 6 (the state-conflict family of
`remit.cli.output`) when verification finds a fault: the stored log disagrees with its own chain.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Annotated, Any, Final

import typer

from rich.markup import escape
from rich.table import Table

from remit.cli.context import state
from remit.cli.output import Column
from remit.sdk.client import RemitClient
from remit.wire.audit import AuditEventOut, VerificationOut

__all__ = ["EXIT_AUDIT_FAULT", "register"]

# A verification fault: the log is in a state that contradicts its chain (6 = state conflict).
EXIT_AUDIT_FAULT: Final = 6
_PAGE: Final = 1000
_POLL_SECONDS: Final = 2.0
_SHORT_HASH: Final = 12

audit = typer.Typer(help="The audit log: verify, tail, export and checkpoint it.", no_args_is_help=True)

TaskOption = Annotated[str | None, typer.Option("--task", help="Only records of this task (task id).")]
AgentOption = Annotated[str | None, typer.Option("--agent", help="Only records of this agent (agent id).")]
TypeOption = Annotated[
    list[str] | None, typer.Option("--type", help="Only records of this type (repeatable), e.g. credential.issued.")
]


def register(app: typer.Typer) -> None:
    app.add_typer(audit, name="audit")
    app.command("trace")(trace)


def _short(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):  # noqa: PLR2004 - a hex SHA-256 or HMAC
        return text[:_SHORT_HASH] + "…"
    return text


def details(event: AuditEventOut) -> str:
    """The record's data as `key=value` pairs, hashes shortened, long structures left out of the table."""
    parts = []
    for key, value in event.data.items():
        if value in (None, "", [], {}) or key == "authorization_details":
            continue
        parts.append(f"{key}={_short(value)}")
    return " ".join(parts) or "-"


COLUMNS: list[Column] = [
    ("seq", lambda e: e.sequence),
    ("time", lambda e: e.occurred_at.isoformat(timespec="seconds")),
    ("type", lambda e: e.type),
    ("actor", lambda e: f"{e.actor_kind}:{e.actor_id}"),
    ("task", lambda e: e.task_id),
    ("details", details),
]


def trace(ctx: typer.Context, task_id: Annotated[str, typer.Argument(help="Task id (tsk_…).")]) -> None:
    """A task's timeline from the audit log: objective, credentials, refusals, revocations and its end."""
    cli = state(ctx)
    with cli.client() as client:
        result = client.trace_task(task_id)
    if cli.printer.is_json:
        cli.printer.json(result)
        return
    task = result.task
    out = cli.printer.out
    out.print(f"[bold]{escape(task.id)}[/bold]  {escape(task.state)}  agent {escape(task.agent_id)}")
    out.print(f"objective: {escape(task.objective)}")
    out.print(
        f"workflow {escape(task.workflow)}  audience {escape(task.audience)}  environment {escape(task.environment)}"
    )
    if len(result.task_ids) > 1:
        out.print(f"covers delegated tasks: {escape(', '.join(result.task_ids[1:]))}")
    table = Table(show_edge=False, pad_edge=False)
    for name, _ in COLUMNS:
        table.add_column(name, overflow="fold")
    for event in result.events:
        table.add_row(*(escape(str(get(event))) for _, get in COLUMNS))
    out.print(table)
    for bad in result.unreadable:
        out.print(f"[red]record {bad.sequence} is unreadable ({escape(bad.reason)}): run `remit audit verify`[/red]")


def _report(printer_out: Any, report: VerificationOut) -> None:  # noqa: ANN401 - a rich Console
    if report.ok:
        printer_out.print(
            f"audit log whole: {report.records_checked} records, head {report.head_sequence} "
            f"{report.head_hash[:_SHORT_HASH]}…, {report.checkpoints_checked} checkpoints checked"
        )
        return
    first = report.first_fault
    assert first is not None  # noqa: S101 - not ok means at least one fault
    printer_out.print(
        f"[red]audit log NOT whole[/red]: first fault {escape(first.kind)} at sequence {first.sequence}: "
        f"{escape(first.message)} ({report.records_checked} records checked, {len(report.faults)} faults)"
    )


@audit.command("verify")
def verify(ctx: typer.Context) -> None:
    """Verify the hash chain and signed checkpoints; exit 6 naming the first fault when the log is not whole."""
    cli = state(ctx)
    with cli.client() as client:
        report = client.verify_audit()
    if cli.printer.is_json:
        cli.printer.json(report)
    else:
        _report(cli.printer.out, report)
    if not report.ok:
        raise typer.Exit(EXIT_AUDIT_FAULT)


def _pages(
    client: RemitClient, *, after: int, task: str | None, agent: str | None, types: Sequence[str]
) -> Iterator[AuditEventOut]:
    cursor: int | None = after
    while cursor is not None:
        page = client.audit_events(after_seq=cursor, task=task, agent=agent, types=types, limit=_PAGE)
        yield from page.items
        cursor = page.next_after


@audit.command("tail")
def tail(
    ctx: typer.Context,
    task: TaskOption = None,
    agent: AgentOption = None,
    event_type: TypeOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many recent records.")] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new records (Ctrl-C stops).")] = False,
) -> None:
    """The most recent records, oldest first, filtered by task, agent and type; -f follows new ones."""
    cli = state(ctx)
    types = event_type or []
    with cli.client() as client:
        if task is None and agent is None and not types:
            head = client.audit_events(limit=1).head_sequence
            start = max(0, head - limit)
        else:
            start = 0
        recent = collections.deque(_pages(client, after=start, task=task, agent=agent, types=types), maxlen=limit)
        cli.printer.rows(list(recent), COLUMNS)
        if not follow:
            return
        last = recent[-1].sequence if recent else start
        try:
            while True:
                time.sleep(_POLL_SECONDS)
                fresh = list(_pages(client, after=last, task=task, agent=agent, types=types))
                if fresh:
                    cli.printer.rows(fresh, COLUMNS)
                    last = fresh[-1].sequence
        except KeyboardInterrupt:
            return


def _open_private(path: Path) -> IO[str]:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(descriptor, "w", encoding="utf-8")


@audit.command("export")
def export(
    ctx: typer.Context,
    ocsf: Annotated[bool, typer.Option("--ocsf", help="OCSF 1.8.0 events (otherwise Remit's own records).")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file (created 0600); default stdout.")
    ] = None,
    task: TaskOption = None,
    agent: AgentOption = None,
    event_type: TypeOption = None,
) -> None:
    """Export records as JSON Lines, one per line in sequence order, to a file or stdout."""
    cli = state(ctx)
    types = event_type or []
    sink = sys.stdout if out is None else _open_private(out)
    written = 0
    try:
        with cli.client() as client:
            cursor: int | None = 0
            while cursor is not None:
                if ocsf:
                    ocsf_page = client.audit_ocsf(after_seq=cursor, task=task, agent=agent, types=types, limit=_PAGE)
                    lines = [json.dumps(item, ensure_ascii=False, sort_keys=True) for item in ocsf_page.items]
                    cursor = ocsf_page.next_after
                else:
                    page = client.audit_events(after_seq=cursor, task=task, agent=agent, types=types, limit=_PAGE)
                    lines = [item.model_dump_json() for item in page.items]
                    cursor = page.next_after
                sink.writelines(line + "\n" for line in lines)
                written += len(lines)
    finally:
        if out is not None:
            sink.close()
        else:
            sink.flush()
    if out is not None:
        cli.printer.note(f"{written} records written to {escape(str(out))}")


@audit.command("checkpoint")
def checkpoint(ctx: typer.Context) -> None:
    """Sign a checkpoint of the log's head now (nothing to do when the head is already checkpointed)."""
    cli = state(ctx)
    with cli.client() as client:
        result = client.create_audit_checkpoint()
    if cli.printer.is_json:
        cli.printer.json(result)
    elif result.get("created"):
        made = result["checkpoint"]
        cli.printer.out.print(f"checkpoint signed at sequence {made['sequence']} ({escape(str(made['key_id']))})")
    else:
        cli.printer.out.print("the head is already checkpointed")


@audit.command("checkpoints")
def checkpoints(ctx: typer.Context) -> None:
    """Every signed checkpoint as a JSON array, to anchor outside Remit's database."""
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.json(client.audit_checkpoints())
