"""`remit policy`: add, list, show, activate and deactivate Cedar policies; the schema; test cases; explain.

`policies` is the typer sub-app; other modules may add commands to it (`@policies.command(...)`).
"""

from __future__ import annotations

import sys

from pathlib import Path
from typing import Annotated, Final

import typer

from rich.markup import escape

from remit.cli.commands._shared import AfterOption, LimitOption, list_items
from remit.cli.context import state
from remit.cli.output import Column
from remit.cli.parsing import parse_facts
from remit.cli.policy_cases import load_cases, run_cases
from remit.core.authorization.policies import parse_policy_ref
from remit.errors import InvalidRequest
from remit.wire.decisions import DecisionIn
from remit.wire.policies import ActivationOut, PolicyIn, PolicyVersionOut, PolicyVersionSummary

__all__ = ["policies", "read_policy_file", "register"]

policies = typer.Typer(
    help="Cedar policies: versioned, validated against the registry's schema, activated one version per name.",
    no_args_is_help=True,
)

COLUMNS: list[Column] = [
    ("name", lambda p: p.name),
    ("active", lambda p: p.active_ref),
    ("latest", lambda p: p.latest_version),
    ("activated by", lambda p: p.activated_by),
    ("activated at", lambda p: p.activated_at),
]
VERSION_COLUMNS: list[Column] = [
    ("ref", lambda v: v.ref),
    ("active", lambda v: "yes" if v.active else ""),
    ("sha256", lambda v: v.sha256),
    ("created by", lambda v: v.created_by),
    ("created at", lambda v: v.created_at),
    ("description", lambda v: v.description),
]
# Cases that fail: the policies contradict what the file expects (6 = state conflict, as `audit verify`).
EXIT_CASES_FAILED: Final = 6
CASE_COLUMNS: list[Column] = [
    ("case", lambda r: r.name),
    ("result", lambda r: "pass" if r.passed else "FAIL"),
    ("expected", lambda r: r.expected),
    ("decided", lambda r: r.effect),
    ("reasons", lambda r: ", ".join(r.reasons)),
    ("missing reasons", lambda r: ", ".join(r.missing_reasons)),
]
REASON_COLUMNS: list[Column] = [
    ("kind", lambda r: r.kind),
    ("id", lambda r: r.id),
    ("detail", lambda r: r.detail or ""),
]
# A policy file is for people to read: anything larger than the server accepts is refused here.
MAX_FILE_BYTES = 256 * 1024


def register(app: typer.Typer) -> None:
    app.add_typer(policies, name="policy")


def read_policy_file(path: Path) -> str:
    """The text of a policy file (`-` reads standard input); unreadable or binary files are InvalidRequest."""
    try:
        raw = sys.stdin.buffer.read(MAX_FILE_BYTES + 1) if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror or type(exc).__name__}"
        raise InvalidRequest(msg, field="file") from None
    if len(raw) > MAX_FILE_BYTES:
        msg = f"{path} is larger than {MAX_FILE_BYTES // 1024} KiB"
        raise InvalidRequest(msg, field="file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        msg = f"{path} is not UTF-8 text"
        raise InvalidRequest(msg, field="file") from None


def _summary(version: PolicyVersionOut) -> PolicyVersionSummary:
    return PolicyVersionSummary.model_validate(version.model_dump(exclude={"text"}))


def _changed(cli_ctx: typer.Context, result: ActivationOut) -> None:
    cli = state(cli_ctx)
    if cli.printer.is_json:
        cli.printer.json(result)
        return
    cli.printer.record(result.policy)
    cli.printer.note(f"policy set generation {result.generation}")


@policies.command("add")
def add(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Cedar policy file ('-' reads standard input).")],
    name: Annotated[str, typer.Option("--name", help="Policy name; a new version is added if it exists.")],
    description: Annotated[str, typer.Option("--description", help="What this version changes, for reviewers.")] = "",
) -> None:
    """Add the next version of a policy; it is validated against the schema and is not active until activated."""
    body = PolicyIn(name=name, text=read_policy_file(file), description=description)
    cli = state(ctx)
    with cli.client() as client:
        added = client.add_policy(body)
    if cli.printer.is_json:
        cli.printer.json(added)
        return
    cli.printer.record(_summary(added))
    cli.printer.note(f"review it, then: remit policy activate {added.ref}")


@policies.command("list")
def list_(ctx: typer.Context, limit: LimitOption = None, after: AfterOption = None) -> None:
    """List policies with their active version."""
    list_items(ctx, lambda c, n, a: c.list_policies(limit=n, after=a), COLUMNS, limit=limit, after=after)


@policies.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[
        str, typer.Argument(help="NAME for the policy and its versions, NAME@VERSION for one version's text.")
    ],
) -> None:
    """Show a policy and its versions, or one version with its Cedar text."""
    cli = state(ctx)
    with cli.client() as client:
        if "@" not in ref:
            detail = client.get_policy(ref)
            if cli.printer.is_json:
                cli.printer.json(detail)
                return
            cli.printer.record(detail.model_copy(update={"versions": []}), title=detail.name)
            cli.printer.rows(detail.versions, VERSION_COLUMNS)
            return
        name, number = parse_policy_ref(ref)
        version = client.get_policy_version(name, number)
    if cli.printer.is_json:
        cli.printer.json(version)
        return
    cli.printer.record(_summary(version))
    cli.printer.out.print()
    cli.printer.out.print(escape(version.text), markup=True)


@policies.command("activate")
def activate(ctx: typer.Context, ref: Annotated[str, typer.Argument(help="NAME@VERSION to make active.")]) -> None:
    """Make a version its policy's active one (it replaces any other version of that policy)."""
    name, number = parse_policy_ref(ref)
    with state(ctx).client() as client:
        result = client.activate_policy(name, number)
    _changed(ctx, result)


@policies.command("deactivate")
def deactivate(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Policy name.")]) -> None:
    """Take a policy out of the active set (with no policy active, every decision is a deny)."""
    with state(ctx).client() as client:
        result = client.deactivate_policy(name)
    _changed(ctx, result)


@policies.command("active")
def active(ctx: typer.Context) -> None:
    """Show the active policy set: its generation and every active version."""
    cli = state(ctx)
    with cli.client() as client:
        found = client.active_policies()
    if cli.printer.is_json:
        cli.printer.json(found)
        return
    cli.printer.note(f"generation {found.generation}" + ("" if found.version else " (no policy active: deny all)"))
    cli.printer.rows(found.policies, VERSION_COLUMNS)


@policies.command("schema")
def schema(ctx: typer.Context) -> None:
    """Print the Cedar schema generated from the registry (JSON output gives both forms)."""
    cli = state(ctx)
    with cli.client() as client:
        found = client.policy_schema()
    if cli.printer.is_json:
        cli.printer.json(found)
        return
    cli.printer.out.print(escape(found.cedar), markup=True)


@policies.command("test")
def test(
    ctx: typer.Context,
    cases: Annotated[Path, typer.Argument(help="YAML file of policies, tools and cases (see docs/policies.md).")],
) -> None:
    """Decide each case against the file's policies, offline; exits 6 when any case fails (for CI)."""
    cli = state(ctx)
    results = run_cases(load_cases(cases))
    failed = [r for r in results if not r.passed]
    if cli.printer.is_json:
        cli.printer.json(
            {"passed": len(results) - len(failed), "failed": len(failed), "cases": [r.model_dump() for r in results]}
        )
    else:
        cli.printer.rows(results, CASE_COLUMNS)
        cli.printer.note(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(code=EXIT_CASES_FAILED)


@policies.command("explain")
def explain(  # noqa: PLR0913, PLR0917 - one option per input of a decision
    ctx: typer.Context,
    credential: Annotated[str, typer.Option("--credential", envvar="REMIT_CREDENTIAL", help="The task credential.")],
    tool: Annotated[str, typer.Option("--tool")],
    action: Annotated[str, typer.Option("--action")],
    resource: Annotated[str, typer.Option("--resource")],
    environment: Annotated[str | None, typer.Option("--environment")] = None,
    fact: Annotated[list[str] | None, typer.Option("--fact", help="A request fact NAME=VALUE (repeatable).")] = None,
) -> None:
    """Ask the server why a call would be decided as it is: the deciding guardrail or policies, and the inputs.

    Recorded as a dry run: it uses no elevation and counts no out-of-objective strike.
    """
    cli = state(ctx)
    request = DecisionIn(
        credential=credential,
        tool=tool,
        action=action,
        resource=resource,
        environment=environment,
        context=parse_facts(fact or []),
    )
    with cli.client() as client:
        decision = client.decide(request, explain=True)
    if cli.printer.is_json:
        cli.printer.json(decision)
        return
    cli.printer.record(
        decision.model_copy(update={"reasons": [], "inputs": None}), title=f"decision: {decision.effect}"
    )
    cli.printer.rows(decision.reasons, REASON_COLUMNS)
    if decision.inputs:
        cli.printer.out.print()
        for name, value in decision.inputs.items():
            cli.printer.out.print(f"{name:22} {escape(str(value))}")
