"""`remit agent`: register agents (workload identities), change them, suspend/retire/reactivate, traceability."""

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
from remit.cli.parsing import parse_date
from remit.errors import InvalidRequest
from remit.wire.registry import AgentChange, AgentIn, AgentOut, OidcIdentity, WorkloadIdentity

__all__ = ["register"]

agents = typer.Typer(
    help="Agents: workload identities with an owner, a function and a review date.", no_args_is_help=True
)

COLUMNS: list[Column] = [
    ("id", lambda a: a.id),
    ("name", lambda a: a.name),
    ("identity", lambda a: a.identity_key),
    ("status", lambda a: a.status),
    ("owner", lambda a: a.owner_id),
    ("function", lambda a: a.function_id),
    ("environments", lambda a: a.environments),
    ("review by", lambda a: a.review_by),
]

RefArgument = Annotated[str, typer.Argument(help="Agent id or name.")]
SpiffeOption = Annotated[
    str | None, typer.Option("--spiffe-id", help="SPIFFE ID, e.g. spiffe://acme.example/agents/invoice-bot.")
]
IssuerOption = Annotated[str | None, typer.Option("--oidc-issuer", help="OIDC issuer URL (with --oidc-subject).")]
SubjectOption = Annotated[str | None, typer.Option("--oidc-subject", help="OIDC subject (with --oidc-issuer).")]


def register(app: typer.Typer) -> None:
    app.add_typer(agents, name="agent")


def _identity(spiffe_id: str | None, issuer: str | None, subject: str | None) -> WorkloadIdentity | None:
    if spiffe_id is None and issuer is None and subject is None:
        return None
    if spiffe_id is not None and (issuer is not None or subject is not None):
        msg = "give either --spiffe-id or --oidc-issuer with --oidc-subject, not both"
        raise InvalidRequest(msg, field="identity")
    if spiffe_id is not None:
        return WorkloadIdentity(spiffe_id=spiffe_id)
    if issuer is None or subject is None:
        msg = "--oidc-issuer and --oidc-subject go together"
        raise InvalidRequest(msg, field="identity.oidc")
    return WorkloadIdentity(oidc=OidcIdentity(issuer=issuer, subject=subject))


@agents.command("add")
def add(  # noqa: PLR0913, PLR0917 - typer maps one parameter per option
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Machine name: a-z, 0-9, '.', '_', '-'.")],
    env: Annotated[list[str], typer.Option("--env", help="An environment the agent may work in. Repeatable.")],
    review_by: Annotated[str, typer.Option("--review-by", help="YYYY-MM-DD: past it, no credential is issued.")],
    spiffe_id: SpiffeOption = None,
    oidc_issuer: IssuerOption = None,
    oidc_subject: SubjectOption = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Accountable owner: id or email.")] = None,
    function: Annotated[str | None, typer.Option("--function", help="Business function: id or name.")] = None,
    description: Annotated[str, typer.Option("--description", help="What the agent does.")] = "",
) -> None:
    """Register an agent with exactly one workload identity."""
    identity = _identity(spiffe_id, oidc_issuer, oidc_subject)
    if identity is None:
        msg = "give --spiffe-id, or --oidc-issuer with --oidc-subject"
        raise InvalidRequest(msg, field="identity")
    body = AgentIn(
        name=name,
        identity=identity,
        owner=owner,
        function=function,
        environments=env,
        review_by=parse_date(review_by),
        description=description,
    )
    cli = state(ctx)
    with cli.client() as client:
        created = client.create_agent(body)
    cli.printer.record(created)
    if not cli.printer.is_json and (created.owner_id is None or created.function_id is None):
        cli.printer.note("[yellow]warning:[/] the agent is untraceable until it has an owner and a function")


@agents.command("list")
def list_(ctx: typer.Context, limit: LimitOption = None, after: AfterOption = None) -> None:
    """List agents."""
    list_items(ctx, lambda c, n, a: c.list_agents(limit=n, after=a), COLUMNS, limit=limit, after=after)


@agents.command("show")
def show(ctx: typer.Context, ref: RefArgument) -> None:
    """Show one agent."""
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.get_agent(ref))


@agents.command("change")
def change(  # noqa: PLR0913, PLR0917 - typer maps one parameter per option
    ctx: typer.Context,
    ref: RefArgument,
    spiffe_id: SpiffeOption = None,
    oidc_issuer: IssuerOption = None,
    oidc_subject: SubjectOption = None,
    owner: Annotated[str | None, typer.Option("--owner", help="New owner: id or email.")] = None,
    function: Annotated[str | None, typer.Option("--function", help="New business function: id or name.")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="Replace the environments. Repeatable.")] = None,
    review_by: Annotated[str | None, typer.Option("--review-by", help="New review date, YYYY-MM-DD.")] = None,
    description: Annotated[str | None, typer.Option("--description", help="New description.")] = None,
    expected_revision: RevisionOption = None,
) -> None:
    """Change an agent; options not given stay as they are."""
    given = require_change(
        identity=_identity(spiffe_id, oidc_issuer, oidc_subject),
        owner=owner,
        function=function,
        environments=env or None,
        review_by=None if review_by is None else parse_date(review_by),
        description=description,
        expected_revision=expected_revision,
    )
    cli = state(ctx)
    with cli.client() as client:
        cli.printer.record(client.change_agent(ref, AgentChange.model_validate(given)))


def _status_command(verb: str, doc: str) -> None:
    def command(ctx: typer.Context, ref: RefArgument, reason: ReasonOption) -> None:
        cli = state(ctx)
        with cli.client() as client:
            method = {
                "suspend": client.suspend_agent,
                "retire": client.retire_agent,
                "reactivate": client.reactivate_agent,
            }[verb]
            agent: AgentOut = method(ref, reason=reason)
        cli.printer.record(agent)

    command.__doc__ = doc
    agents.command(verb)(command)


_status_command("suspend", "Suspend an agent: no credentials until reactivated; its task credentials are revoked.")
_status_command("retire", "Retire an agent for good: it can never be reactivated.")
_status_command("reactivate", "Reactivate a suspended agent.")


@agents.command("traceability")
def traceability(ctx: typer.Context, ref: RefArgument) -> None:
    """Whether an agent traces to an active owner and a business function (exit 0 either way)."""
    cli = state(ctx)
    with cli.client() as client:
        result = client.agent_traceability(ref)
    if cli.printer.is_json:
        cli.printer.json(result)
    elif result.traceable:
        cli.printer.note(f"{result.agent_id}: traceable")
    else:
        cli.printer.note(f"{result.agent_id}: [red]untraceable[/]: {'; '.join(result.problems)}")


@agents.command("untraceable")
def untraceable(ctx: typer.Context) -> None:
    """List every agent without an active owner, a business function or a current review date."""
    cli = state(ctx)
    with cli.client() as client:
        found = client.untraceable_agents()
    if cli.printer.is_json:
        cli.printer.json(found)  # the wire form: a list
        return
    cli.printer.rows(
        found,
        [("id", lambda u: u.agent.id), ("name", lambda u: u.agent.name), ("problems", lambda u: u.problems)],
    )
