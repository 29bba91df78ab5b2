"""`remit policy test cases.yaml`: decide example requests against a policy set, offline, for CI of policy repos.

The file names the policies (a directory of `*.cedar` files or a list of files, relative to the
file), the tools the requests refer to, and the cases: the facts of one request and the expected
effect (`allow`, `deny` or `step_up`), optionally with policy ids that must be among the reasons.
Requests are evaluated by the same Cedar engine and the same policy step as the decision service
(`policy_outcome`); the guardrails before it depend on live credentials and are not part of this.

```yaml
policies: ../examples/policies
tools:
  github:
    actions: {read_file: read, merge_pr: write}
    resources:
      "repo:acme/*": {sensitivity: internal}
      "repo:acme/secrets*": {sensitivity: restricted}
cases:
  - name: a read of internal data is allowed
    request: {tool: github, action: read_file, resource: repo:acme/app}
    expect: allow
  - name: restricted data needs an approval
    request: {tool: github, action: read_file, resource: repo:acme/secrets}
    expect: step_up
    reasons: [restricted-data@1/forbid-restricted-without-elevation]
```
"""

from __future__ import annotations

import datetime as dt
import hashlib

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from remit.adapters.cedar import CedarPolicyValidator, build_entities, compile_policies
from remit.core.authorization import guardrails
from remit.core.authorization.models import PolicyRequest, PolicyResult, parse_request_context
from remit.core.authorization.policies import ActivePolicySet, PolicyVersion
from remit.core.authorization.service import policy_outcome
from remit.core.registry.models import (
    Agent,
    AgentStatus,
    BusinessFunction,
    Owner,
    OwnerStatus,
    RiskClass,
    Sensitivity,
    SpiffeId,
    Tool,
    ToolAction,
    ToolResource,
    WorkloadBinding,
)
from remit.core.registry.patterns import matches
from remit.core.tasks.models import Task
from remit.errors import FieldError, InvalidRequest

__all__ = ["CaseResult", "load_cases", "run_cases"]

_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_MAX_FILE_BYTES = 1024 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _ResourceIn(_Strict):
    sensitivity: Literal["public", "internal", "confidential", "restricted"]
    environment: str | None = None


class _ToolIn(_Strict):
    actions: dict[str, RiskClass] = Field(min_length=1)
    resources: dict[str, _ResourceIn] = Field(min_length=1)


class _RequestIn(_Strict):
    tool: str
    action: str
    resource: str
    environment: str = "prod"
    sensitivity: Literal["public", "internal", "confidential", "restricted"] | None = None
    elevated: bool = False
    objective: str = "policy test"
    workflow: str = "workflow@1"
    agent: str = "agent"
    delegation_chain: list[str] = Field(default_factory=list)
    principal: str | None = None
    context: dict[str, str | int | bool] = Field(default_factory=dict)
    at: dt.datetime = _EPOCH


class _CaseIn(_Strict):
    name: str = Field(min_length=1)
    request: _RequestIn
    expect: Literal["allow", "deny", "step_up"]
    reasons: list[str] = Field(default_factory=list)


class _CasesFile(_Strict):
    policies: str | list[str]
    tools: dict[str, _ToolIn] = Field(min_length=1)
    cases: list[_CaseIn] = Field(min_length=1)


class CaseResult(BaseModel):
    """One case: what was expected, what the policies decided, why, and whether that is what was expected."""

    name: str
    expected: str
    effect: str
    reasons: list[str]
    missing_reasons: list[str]
    passed: bool


@dataclass(frozen=True, slots=True)
class LoadedCases:
    versions: tuple[PolicyVersion, ...]
    tools: dict[str, Tool]
    cases: tuple[_CaseIn, ...]


def _version(path: Path, number: int) -> PolicyVersion:
    text = path.read_text(encoding="utf-8")
    return PolicyVersion(
        id=f"pol_{number}",
        name=path.stem,
        version=1,
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        description=str(path),
        created_by="policy-test",
        created_at=_EPOCH,
    )


def _policy_files(base: Path, spec: str | list[str]) -> list[Path]:
    paths = [base / p for p in ([spec] if isinstance(spec, str) else spec)]
    files: list[Path] = []
    for path in paths:
        found = sorted(path.glob("*.cedar")) if path.is_dir() else [path]
        files.extend(found)
    missing = [str(p) for p in files if not p.is_file()]
    if missing or not files:
        msg = f"no policy files at {', '.join(missing or [str(p) for p in paths])}"
        raise InvalidRequest(msg, field="policies")
    return files


def _tool(name: str, spec: _ToolIn) -> Tool:
    return Tool(
        id=f"tool_{name}",
        name=name,
        description="",
        actions=tuple(ToolAction(a, risk) for a, risk in spec.actions.items()),
        resources=tuple(
            ToolResource(pattern, Sensitivity.parse(r.sensitivity), environment=r.environment)
            for pattern, r in spec.resources.items()
        ),
        created_at=_EPOCH,
        updated_at=_EPOCH,
    )


def load_cases(path: Path) -> LoadedCases:
    """Read and check a cases file; every problem is an InvalidRequest naming where it is."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror or type(exc).__name__}"
        raise InvalidRequest(msg, field="file") from None
    if len(raw) > _MAX_FILE_BYTES:
        raise InvalidRequest(f"{path} is larger than 1 MiB", field="file")
    try:
        parsed = _CasesFile.model_validate(yaml.safe_load(raw))
    except yaml.YAMLError as exc:
        raise InvalidRequest(f"{path} is not valid YAML: {exc}", field="file") from None
    except ValidationError as exc:
        errors = [FieldError(tuple(e["loc"]), e["type"], e["msg"]) for e in exc.errors()]
        raise InvalidRequest(f"{path} is not a policy test file", errors=errors) from None
    files = _policy_files(path.parent, parsed.policies)
    tools = {name: _tool(name, spec) for name, spec in parsed.tools.items()}
    versions = tuple(_version(f, i) for i, f in enumerate(files, start=1))
    validator = CedarPolicyValidator()
    for version in versions:
        problems = validator.check(version.text, tools=tuple(tools.values()))
        if problems:
            errors = [FieldError(("policies", version.name, p.policy), "cedar", p.message) for p in problems]
            raise InvalidRequest(f"policy {version.name} does not validate against the tools", errors=errors)
    return LoadedCases(versions=versions, tools=tools, cases=tuple(parsed.cases))


def _policy_request(loaded: LoadedCases, case: _CaseIn, index: int) -> tuple[PolicyRequest, bool]:
    request = case.request
    where = f"cases.{index}.request"
    tool = loaded.tools.get(request.tool)
    if tool is None:
        raise InvalidRequest(f"unknown tool {request.tool!r}", field=f"{where}.tool")
    action = tool.action(request.action)
    if action is None:
        raise InvalidRequest(f"tool {tool.name!r} has no action {request.action!r}", field=f"{where}.action")
    registered = tool.sensitivity_of(request.resource)
    if registered is None:
        raise InvalidRequest(f"resource {request.resource!r} is not registered", field=f"{where}.resource")
    stated = Sensitivity.parse(request.sensitivity) if request.sensitivity else None
    sensitivity = max(registered, stated) if stated is not None else registered
    context, _ = parse_request_context(request.context)
    owner = Owner(
        id="own_test",
        name="Owner",
        email="owner@example.test",
        status=OwnerStatus.ACTIVE,
        created_at=_EPOCH,
        updated_at=_EPOCH,
    )
    function = BusinessFunction(
        id="fn_test", name="function", description="", owner_id=owner.id, created_at=_EPOCH, updated_at=_EPOCH
    )
    agent = Agent(
        id="agt_test",
        name=request.agent,
        binding=WorkloadBinding(spiffe_id=SpiffeId.parse(f"spiffe://policy.test/{request.agent}")),
        owner_id=owner.id,
        function_id=function.id,
        environments=frozenset({request.environment}),
        status=AgentStatus.ACTIVE,
        review_by=dt.date(2099, 1, 1),
        created_at=_EPOCH,
        updated_at=_EPOCH,
    )
    task = Task(
        id="tsk_test",
        agent_id=agent.id,
        owner_id=owner.id,
        function_id=function.id,
        workflow_id="wf_test",
        workflow_ref=request.workflow,
        objective=request.objective,
        details=(),
        environment=request.environment,
        audience=f"tool:{tool.name}",
        created_at=request.at - dt.timedelta(minutes=1),
        deadline=request.at + dt.timedelta(hours=1),
        lineage=tuple(f"tsk_parent{i}" for i in range(len(request.delegation_chain))),
        principal=request.principal,
    )
    resource_environment = next(
        (r.environment for r in tool.resources if r.environment is not None and matches(r.pattern, request.resource)),
        None,
    )
    policy_request = PolicyRequest(
        agent=agent,
        owner=owner,
        function=function,
        tool=tool,
        action=action,
        resource=request.resource,
        sensitivity=sensitivity,
        resource_environment=resource_environment,
        task=task,
        environment=request.environment,
        delegation_chain=tuple(request.delegation_chain),
        now=request.at,
        elevated=request.elevated,
        context=context,
    )
    return policy_request, guardrails.needs_elevation(action.risk_class) and not request.elevated


class _Compiled:
    """The candidate set as a PolicyEvaluator, entities built per request."""

    def __init__(self, loaded: LoadedCases) -> None:
        self._compiled = compile_policies(ActivePolicySet(generation=1, versions=loaded.versions))

    @property
    def version(self) -> int | None:
        return self._compiled.version

    def evaluate(self, request: PolicyRequest) -> PolicyResult:
        return self._compiled.evaluate(request, build_entities)


def run_cases(loaded: LoadedCases) -> list[CaseResult]:
    """Decide every case with the policy step of the decision service; never raises for a valid file."""
    engine = _Compiled(loaded)
    results = []
    for index, case in enumerate(loaded.cases):
        request, needs_elevation = _policy_request(loaded, case, index)
        effect, reasons, _ = policy_outcome(engine, request, needs_elevation=needs_elevation)
        ids = [r.id for r in reasons]
        missing = [r for r in case.reasons if r not in ids]
        results.append(
            CaseResult(
                name=case.name,
                expected=case.expect,
                effect=effect.value,
                reasons=ids,
                missing_reasons=missing,
                passed=effect.value == case.expect and not missing,
            )
        )
    return results
