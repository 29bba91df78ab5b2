"""`remit approvals`, `remit breakglass` and `remit operator`: answer step-ups, break the glass, manage people.

Approvals and break-glass are personal: run them with your own operator account's token
(`REMIT_TOKEN` or `--token-file`), never the shared bootstrap token.
"""

from __future__ import annotations

import os
import time

from pathlib import Path
from typing import Annotated, Final

import typer

from remit.cli.commands._shared import AfterOption, LimitOption, ReasonOption, list_items
from remit.cli.context import state
from remit.cli.output import Column
from remit.cli.parsing import parse_facts
from remit.errors import InvalidRequest
from remit.wire.approvals import ApprovalOut, BreakGlassIn, OperatorIn

__all__ = ["approvals", "breakglass", "operators", "register"]

approvals = typer.Typer(help="Approval requests: list, watch, approve, deny.", no_args_is_help=True)
breakglass = typer.Typer(
    help="Break-glass: self-grant a short elevation, loudly; reviewed by an auditor.", no_args_is_help=True
)
operators = typer.Typer(
    help="Operator accounts: people with roles and their own tokens (admin only).", no_args_is_help=True
)

COLUMNS: list[Column] = [
    ("id", lambda a: a.id),
    ("state", lambda a: a.state),
    ("task", lambda a: a.task_id),
    ("call", lambda a: f"{a.tool}:{a.action} {a.resource}"),
    ("risk", lambda a: a.risk_class),
    ("sensitivity", lambda a: a.sensitivity),
    ("approvals", lambda a: f"{a.approvals}/{a.required}"),
    ("approvers", lambda a: a.approvers),
    ("expires", lambda a: a.expires_at),
]
GRANT_COLUMNS: list[Column] = [
    ("id", lambda a: a.id),
    ("holder", lambda a: a.requested_by),
    ("task", lambda a: a.task_id),
    ("call", lambda a: f"{a.tool}:{a.action} {a.resource}"),
    ("granted", lambda a: a.created_at),
    ("review", lambda a: a.review_state),
    ("justification", lambda a: a.justification),
]
OPERATOR_COLUMNS: list[Column] = [
    ("name", lambda o: o.name),
    ("roles", lambda o: o.roles),
    ("groups", lambda o: o.groups),
    ("email", lambda o: o.email),
    ("active", lambda o: "yes" if o.active else "no"),
    ("created by", lambda o: o.created_by),
]
_WATCH_SECONDS: Final = 2.0


def register(app: typer.Typer) -> None:
    app.add_typer(approvals, name="approvals")
    app.add_typer(breakglass, name="breakglass")
    app.add_typer(operators, name="operator")


def _show(ctx: typer.Context, approval: ApprovalOut) -> None:
    cli = state(ctx)
    if cli.printer.is_json:
        cli.printer.json(approval)
        return
    cli.printer.record(approval.model_copy(update={"history": None, "votes": []}), title=approval.id)


# ------------------------------------------------------------------ approvals


@approvals.command("list")
def list_(
    ctx: typer.Context,
    state_: Annotated[str | None, typer.Option("--state", help="pending, approved, denied or expired.")] = None,
    task: Annotated[str | None, typer.Option("--task", help="Only this task's requests.")] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep showing pending requests as they arrive (Ctrl-C stops).")
    ] = False,
    limit: LimitOption = None,
    after: AfterOption = None,
) -> None:
    """List approval requests (approver, auditor or admin token)."""
    if not watch:
        list_items(
            ctx,
            lambda c, n, a: c.list_approvals(state=state_, task=task, limit=n, after=a),
            COLUMNS,
            limit=limit,
            after=after,
        )
        return
    cli = state(ctx)
    seen: set[str] = set()
    with cli.client() as client:
        while True:
            fresh = [a for a in client.list_approvals(state=state_ or "pending", task=task).items if a.id not in seen]
            if fresh:
                cli.printer.rows(fresh, COLUMNS)
                seen.update(a.id for a in fresh)
            time.sleep(_WATCH_SECONDS)


@approvals.command("show")
def show(ctx: typer.Context, approval_id: Annotated[str, typer.Argument(help="Approval request id.")]) -> None:
    """Show one request: what will happen, who asked, and the task's history so far."""
    cli = state(ctx)
    with cli.client() as client:
        approval = client.get_approval(approval_id)
    if cli.printer.is_json:
        cli.printer.json(approval)
        return
    _show(ctx, approval)
    if approval.history:
        cli.printer.out.print()
        cli.printer.rows(
            approval.history,
            [
                ("seq", lambda h: h.sequence),
                ("event", lambda h: h.type),
                ("by", lambda h: f"{h.actor_kind}:{h.actor_id}"),
                ("at", lambda h: h.occurred_at),
            ],
        )


@approvals.command("approve")
def approve(
    ctx: typer.Context,
    approval_id: Annotated[str, typer.Argument(help="Approval request id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why: recorded in the audit trail.")] = "",
) -> None:
    """Approve a request with your approver account; it grants once enough distinct approvers agreed."""
    with state(ctx).client() as client:
        _show(ctx, client.approve(approval_id, reason=reason))


@approvals.command("deny")
def deny(
    ctx: typer.Context,
    approval_id: Annotated[str, typer.Argument(help="Approval request id.")],
    reason: ReasonOption,
) -> None:
    """Deny a request with a reason: it ends at once."""
    with state(ctx).client() as client:
        _show(ctx, client.deny(approval_id, reason=reason))


# ------------------------------------------------------------------ break-glass


@breakglass.command("grant")
def grant(  # noqa: PLR0913, PLR0917 - typer passes each option
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(help="The running task.")],
    tool: Annotated[str, typer.Option("--tool")],
    action: Annotated[str, typer.Option("--action")],
    resource: Annotated[str, typer.Option("--resource")],
    justification: Annotated[str, typer.Option("--justification", help="Why, in writing (at least 20 characters).")],
    ttl: Annotated[
        int | None, typer.Option("--ttl", min=30, max=900, help="Seconds (default: the configured 10 minutes).")
    ] = None,
    fact: Annotated[
        list[str] | None,
        typer.Option(
            "--fact",
            help="A request fact the grant covers exactly, as key=value (repeatable; true/false and integers are "
            "typed): e.g. --fact amount=250 --fact currency=EUR.",
        ),
    ] = None,
) -> None:
    """Self-grant an elevation for one call of a running task: a high-severity alert and an open review follow."""
    body = BreakGlassIn(
        task_id=task_id,
        tool=tool,
        action=action,
        resource=resource,
        justification=justification,
        ttl_seconds=ttl,
        context=parse_facts(fact or []),
    )
    with state(ctx).client() as client:
        _show(ctx, client.break_glass(body))


@breakglass.command("list")
def list_grants(
    ctx: typer.Context,
    unreviewed: Annotated[bool, typer.Option("--unreviewed", help="Only grants whose review is open.")] = False,
    limit: LimitOption = None,
    after: AfterOption = None,
) -> None:
    """List break-glass grants."""
    list_items(
        ctx,
        lambda c, n, a: c.list_break_glass(unreviewed=unreviewed, limit=n, after=a),
        GRANT_COLUMNS,
        limit=limit,
        after=after,
    )


@breakglass.command("review")
def review(
    ctx: typer.Context,
    approval_id: Annotated[str, typer.Argument(help="The grant's id.")],
    notes: Annotated[str, typer.Option("--notes", help="What the review found.")],
) -> None:
    """Close a grant's post-use review (an auditor other than the holder)."""
    with state(ctx).client() as client:
        _show(ctx, client.review_break_glass(approval_id, notes=notes))


# ------------------------------------------------------------------ operator accounts


@operators.command("add")
def add(  # noqa: PLR0913, PLR0917 - typer passes each option
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Account name.")],
    role: Annotated[list[str], typer.Option("--role", help="admin, approver, auditor or break-glass (repeatable).")],
    group: Annotated[list[str] | None, typer.Option("--group", help="Approver group (repeatable).")] = None,
    email: Annotated[str | None, typer.Option("--email", help="The person's email.")] = None,
    owner: Annotated[
        str | None, typer.Option("--owner", help="The registry owner this person is (id or email).")
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option("--write-token", help="Write the token to this new file (0600) instead of printing it."),
    ] = None,
) -> None:
    """Create an account; its token is shown once (or written to a 0600 file) and stored only as a digest."""
    if token_file is not None and token_file.exists():
        raise InvalidRequest(f"{token_file} exists; choose a new file", field="write-token")
    body = OperatorIn(name=name, roles=role, groups=group or [], email=email, owner=owner)
    cli = state(ctx)
    with cli.client() as client:
        created = client.add_operator(body)
    if token_file is not None:
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(created.token + "\n")
        created = created.model_copy(update={"token": f"written to {token_file}"})
    if cli.printer.is_json:
        cli.printer.json(created)
        return
    cli.printer.record(created.operator)
    cli.printer.note(f"token (shown once): {created.token}")


@operators.command("list")
def list_operators(ctx: typer.Context, limit: LimitOption = None, after: AfterOption = None) -> None:
    """List operator accounts."""
    list_items(ctx, lambda c, n, a: c.list_operators(limit=n, after=a), OPERATOR_COLUMNS, limit=limit, after=after)


@operators.command("disable")
def disable(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Account name.")], reason: ReasonOption
) -> None:
    """Disable an account: its token stops working at once."""
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.disable_operator(name, reason=reason))
