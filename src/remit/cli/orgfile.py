"""The declarative organisation file of `remit apply`: its schema, its parser, and the plan against server state.

Each entry is the body of the matching `POST /v1/...` request, except workflows, which take a human
`max_duration` (`30m`) and an optional `approve: true`. Planning is pure: it compares the file with a
snapshot of the server (`ServerState`) and yields one `Step` per object (create, change or unchanged);
only executing a step talks to the server. Apply never deletes what the file does not mention.
"""

from __future__ import annotations

import datetime as dt

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from remit.cli.parsing import format_duration, parse_duration
from remit.errors import InvalidRequest, RemitError
from remit.sdk.client import RemitClient
from remit.wire.registry import (
    AgentChange,
    AgentIn,
    AgentOut,
    FunctionChange,
    FunctionIn,
    FunctionOut,
    GrantIn,
    GrantOut,
    OwnerChange,
    OwnerIn,
    OwnerOut,
    ToolChange,
    ToolIn,
    ToolOut,
    WorkflowChange,
    WorkflowIn,
    WorkflowOut,
    WorkflowStepIn,
)

__all__ = [
    "Action",
    "OrgFile",
    "OrgWorkflow",
    "ServerState",
    "Step",
    "load_org_file",
    "parse_org",
    "plan",
]

MAX_FILE_BYTES = 4 * 1024 * 1024


class OrgWorkflow(BaseModel):
    """A workflow as the file declares it: the latest version should have this content (and be approved)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63)
    function: str = Field(min_length=1, max_length=63)
    description: str = Field(default="", max_length=2000)
    steps: list[WorkflowStepIn] = Field(min_length=1, max_length=256)
    max_duration: int = Field(description="seconds, or 90s / 30m / 2h / 1d / 1h30m")
    approve: bool = False

    @field_validator("max_duration", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return parse_duration(value)
            except InvalidRequest as exc:
                raise ValueError(exc.message) from None
        return value

    def body(self) -> WorkflowIn:
        return WorkflowIn(
            name=self.name,
            function=self.function,
            description=self.description,
            steps=self.steps,
            max_duration_seconds=self.max_duration,
        )


class OrgFile(BaseModel):
    """The whole organisation file; every list is optional, and keys are unique per kind."""

    model_config = ConfigDict(extra="forbid")

    owners: list[OwnerIn] = Field(default_factory=list)
    functions: list[FunctionIn] = Field(default_factory=list)
    tools: list[ToolIn] = Field(default_factory=list)
    workflows: list[OrgWorkflow] = Field(default_factory=list)
    agents: list[AgentIn] = Field(default_factory=list)
    grants: list[GrantIn] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_keys(self) -> OrgFile:
        keyed: list[tuple[str, Sequence[str]]] = [
            ("owners", [o.email.strip().lower() for o in self.owners]),
            ("functions", [f.name for f in self.functions]),
            ("tools", [t.name for t in self.tools]),
            ("workflows", [w.name for w in self.workflows]),
            ("agents", [a.name for a in self.agents]),
            ("grants", [f"{g.agent}/{g.tool}/{g.action}/{g.resource}" for g in self.grants]),
        ]
        for kind, keys in keyed:
            seen: set[str] = set()
            for key in keys:
                if key in seen:
                    msg = f"{kind}: {key!r} appears twice"
                    raise ValueError(msg)
                seen.add(key)
        return self


def _path(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_org(text: str, *, source: str) -> OrgFile:
    """Parse an organisation file; any problem is one InvalidRequest naming the file and the path in it."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or "not valid YAML"
        msg = f"{where}: {problem}"
        raise InvalidRequest(msg, details={"file": source}) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        msg = f"{source}: the top level must be a mapping of owners, functions, tools, workflows, agents, grants"
        raise InvalidRequest(msg, details={"file": source})
    try:
        return OrgFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = exc.error_count() - 1
        message = first["msg"].removeprefix("Value error, ")
        msg = f"{source}: {_path(first['loc'])}: {message}" + (f" (and {more} more)" if more else "")
        raise InvalidRequest(msg, details={"file": source}) from None


def load_org_file(path: Path) -> OrgFile:
    try:
        data = path.read_bytes()
    except OSError as exc:
        msg = f"{path}: cannot read ({exc.strerror or type(exc).__name__})"
        raise InvalidRequest(msg) from None
    if len(data) > MAX_FILE_BYTES:
        msg = f"{path}: larger than {MAX_FILE_BYTES} bytes"
        raise InvalidRequest(msg)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        msg = f"{path}: not UTF-8 text"
        raise InvalidRequest(msg) from None
    return parse_org(text, source=str(path))


# ---------------------------------------------------------------- server state and plan


@dataclass(frozen=True, slots=True)
class ServerState:
    """A snapshot of everything `apply` compares against."""

    owners: Sequence[OwnerOut] = ()
    functions: Sequence[FunctionOut] = ()
    tools: Sequence[ToolOut] = ()
    workflows: Sequence[WorkflowOut] = ()
    agents: Sequence[AgentOut] = ()
    grants: Sequence[GrantOut] = ()

    @classmethod
    def fetch(cls, client: RemitClient) -> ServerState:
        return cls(
            owners=list(client.iter_owners()),
            functions=list(client.iter_functions()),
            tools=list(client.iter_tools()),
            workflows=list(client.iter_workflows()),
            agents=list(client.iter_agents()),
            grants=list(client.iter_grants()),
        )

    def owner_id(self, ref: str | None) -> str | None:
        if ref is None:
            return None
        wanted = ref.strip().lower()
        return next((o.id for o in self.owners if wanted in {o.id, o.email.lower()}), None)

    def function_id(self, ref: str | None) -> str | None:
        if ref is None:
            return None
        return next((f.id for f in self.functions if ref in {f.id, f.name}), None)

    def agent_id(self, ref: str) -> str | None:
        return next((a.id for a in self.agents if ref in {a.id, a.name}), None)


class Action(StrEnum):
    """What applying does to one object."""

    CREATE = "create"
    CHANGE = "change"
    UNCHANGED = "unchanged"


Operation = Callable[[RemitClient], None]


@dataclass(frozen=True, slots=True)
class Step:
    """One object of the plan: its kind and key, what happens, and (for a change) what differs."""

    kind: str
    key: str
    action: Action
    changes: tuple[str, ...] = ()
    run: Operation | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "action": self.action.value, "changes": list(self.changes)}


def _norm(value: object) -> object:
    """Compare content, not formatting: strings trimmed, dict keys sorted, None-valued keys dropped."""
    if isinstance(value, BaseModel):
        return _norm(value.model_dump(mode="json", exclude_none=True))
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in sorted(value.items()) if v is not None}
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _unordered(items: Iterable[object]) -> list[object]:
    return sorted((_norm(i) for i in items), key=repr)


def _show(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."  # noqa: PLR2004 - display width


def _diff(name: str, current: object, desired: object) -> str | None:
    return None if current == desired else f"{name}: {_show(current)} → {_show(desired)}"


def _collect(*diffs: str | None) -> tuple[str, ...]:
    return tuple(d for d in diffs if d is not None)


def _plan_owner(desired: OwnerIn, state: ServerState) -> Step:
    key = desired.email.strip().lower()
    current = next((o for o in state.owners if o.email.lower() == key), None)
    if current is None:
        return Step("owner", key, Action.CREATE, run=lambda c: _ignore(c.create_owner(desired)))
    changes = _collect(
        _diff("name", current.name, desired.name.strip()),
        _diff("human_identities", _unordered(current.human_identities), _unordered(desired.human_identities)),
    )
    if not changes:
        return Step("owner", key, Action.UNCHANGED)
    change = OwnerChange(name=desired.name, human_identities=desired.human_identities)
    return Step("owner", key, Action.CHANGE, changes, run=lambda c: _ignore(c.change_owner(current.id, change)))


def _plan_function(desired: FunctionIn, state: ServerState) -> Step:
    current = next((f for f in state.functions if f.name == desired.name), None)
    if current is None:
        return Step("function", desired.name, Action.CREATE, run=lambda c: _ignore(c.create_function(desired)))
    owner_id = state.owner_id(desired.owner)
    changes = _collect(
        _diff("description", current.description, desired.description.strip()),
        None if owner_id == current.owner_id else f"owner: {current.owner_id} → {desired.owner}",
    )
    if not changes:
        return Step("function", desired.name, Action.UNCHANGED)
    change = FunctionChange(description=desired.description, owner=desired.owner)
    return Step(
        "function", desired.name, Action.CHANGE, changes, run=lambda c: _ignore(c.change_function(current.id, change))
    )


def _plan_tool(desired: ToolIn, state: ServerState) -> Step:
    current = next((t for t in state.tools if t.name == desired.name), None)
    if current is None:
        return Step("tool", desired.name, Action.CREATE, run=lambda c: _ignore(c.create_tool(desired)))
    changes = _collect(
        _diff("description", current.description, desired.description.strip()),
        "actions" if _unordered(current.actions) != _unordered(desired.actions) else None,
        "resources" if _unordered(current.resources) != _unordered(desired.resources) else None,
    )
    if not changes:
        return Step("tool", desired.name, Action.UNCHANGED)
    change = ToolChange(description=desired.description, actions=desired.actions, resources=desired.resources)
    return Step("tool", desired.name, Action.CHANGE, changes, run=lambda c: _ignore(c.change_tool(current.id, change)))


def _create_workflow(body: WorkflowIn, *, approve: bool) -> Operation:
    def run(client: RemitClient) -> None:
        created = client.create_workflow(body)
        if approve:
            client.approve_workflow(created.ref, expected_hash=created.content_hash)

    return run


def _change_draft(ref: str, change: WorkflowChange, *, approve: bool) -> Operation:
    def run(client: RemitClient) -> None:
        changed = client.change_workflow(ref, change)
        if approve:
            client.approve_workflow(changed.ref, expected_hash=changed.content_hash)

    return run


def _plan_workflow(desired: OrgWorkflow, state: ServerState) -> Step:  # noqa: PLR0911 - one return per case
    versions = sorted((w for w in state.workflows if w.name == desired.name), key=lambda w: w.version)
    body = desired.body()
    suffix = " and approve" if desired.approve else " (draft)"
    if not versions:
        return Step(
            "workflow",
            desired.name,
            Action.CREATE,
            (f"version 1{suffix}",),
            run=_create_workflow(body, approve=desired.approve),
        )
    latest = versions[-1]
    function_id = state.function_id(desired.function)
    changes = _collect(
        None if function_id == latest.function_id else f"function: {latest.function_id} → {desired.function}",
        _diff("description", latest.description, desired.description.strip()),
        "steps" if _norm(latest.steps) != _norm(desired.steps) else None,
        None
        if latest.max_duration_seconds == desired.max_duration
        else (
            f"max_duration: {format_duration(latest.max_duration_seconds)} → {format_duration(desired.max_duration)}"
        ),
    )
    next_version = f"version {latest.version + 1}{suffix}"
    if latest.state == "retired":
        why = (*changes, f"{latest.ref} is retired: {next_version}")
        return Step("workflow", desired.name, Action.CHANGE, why, run=_create_workflow(body, approve=desired.approve))
    if latest.state == "draft":
        if changes:
            change = WorkflowChange(
                description=desired.description, steps=desired.steps, max_duration_seconds=desired.max_duration
            )
            why = (*changes, f"update draft {latest.ref}{' and approve' if desired.approve else ''}")
            return Step(
                "workflow",
                desired.name,
                Action.CHANGE,
                why,
                run=_change_draft(latest.ref, change, approve=desired.approve),
            )
        if desired.approve:
            return Step(
                "workflow",
                desired.name,
                Action.CHANGE,
                (f"approve draft {latest.ref}",),
                run=lambda c: _ignore(c.approve_workflow(latest.ref, expected_hash=latest.content_hash)),
            )
        return Step("workflow", desired.name, Action.UNCHANGED)
    if changes:  # approved versions are immutable: the change is a new version
        return Step(
            "workflow",
            desired.name,
            Action.CHANGE,
            (*changes, next_version),
            run=_create_workflow(body, approve=desired.approve),
        )
    return Step("workflow", desired.name, Action.UNCHANGED)


def _plan_agent(desired: AgentIn, state: ServerState) -> Step:
    current = next((a for a in state.agents if a.name == desired.name), None)
    if current is None:
        return Step("agent", desired.name, Action.CREATE, run=lambda c: _ignore(c.create_agent(desired)))
    owner_id = state.owner_id(desired.owner)
    function_id = state.function_id(desired.function)
    changed: dict[str, Any] = {}
    changes: list[str] = []
    if _norm(current.identity) != _norm(desired.identity):
        changed["identity"] = desired.identity
        changes.append(f"identity: {current.identity_key} → {_norm(desired.identity)}")
    if desired.owner is not None and owner_id != current.owner_id:
        changed["owner"] = desired.owner
        changes.append(f"owner: {current.owner_id} → {desired.owner}")
    if desired.function is not None and function_id != current.function_id:
        changed["function"] = desired.function
        changes.append(f"function: {current.function_id} → {desired.function}")
    for name, now, wanted in (
        ("environments", sorted(set(current.environments)), sorted(set(desired.environments))),
        ("review_by", current.review_by, desired.review_by),
        ("description", current.description, desired.description.strip()),
    ):
        diff = _diff(name, now, wanted)
        if diff is not None:
            changed[name] = getattr(desired, name)
            changes.append(diff)
    if not changes:
        return Step("agent", desired.name, Action.UNCHANGED)
    change = AgentChange.model_validate(changed)
    return Step(
        "agent", desired.name, Action.CHANGE, tuple(changes), run=lambda c: _ignore(c.change_agent(current.id, change))
    )


def _plan_grant(desired: GrantIn, state: ServerState) -> Step:
    key = f"{desired.agent} {desired.tool}:{desired.action} {desired.resource}"
    agent_id = state.agent_id(desired.agent)
    exists = agent_id is not None and any(
        (g.agent_id, g.tool, g.action, g.resource) == (agent_id, desired.tool, desired.action, desired.resource)
        for g in state.grants
    )
    if exists:
        return Step("grant", key, Action.UNCHANGED)
    return Step("grant", key, Action.CREATE, run=lambda c: _ignore(c.create_grant(desired)))


def _ignore(_: object) -> None:
    return None


def plan(org: OrgFile, state: ServerState) -> list[Step]:
    """Every object of the file, in dependency order, with what applying it would do."""
    return [
        *(_plan_owner(o, state) for o in org.owners),
        *(_plan_function(f, state) for f in org.functions),
        *(_plan_tool(t, state) for t in org.tools),
        *(_plan_workflow(w, state) for w in org.workflows),
        *(_plan_agent(a, state) for a in org.agents),
        *(_plan_grant(g, state) for g in org.grants),
    ]


def execute(steps: Sequence[Step], client: RemitClient) -> None:
    """Run every create and change in order; an error names the object it stopped at."""
    for step in steps:
        if step.run is None:
            continue
        try:
            step.run(client)
        except RemitError as error:
            error.message = f"{step.kind} {step.key}: {error.message}"
            raise
