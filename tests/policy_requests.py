"""Policy requests built from plain domain objects (no database): valid by default, every fact overridable."""

from __future__ import annotations

import datetime as dt

from collections.abc import Mapping
from dataclasses import replace

from remit.core.authorization.models import PolicyRequest
from remit.core.authorization.policies import ActivePolicySet, PolicyVersion
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
from remit.core.tasks.models import AuthorizationDetail, Task

NOW = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)

OWNER = Owner(
    id="own_01",
    name="Grace Hopper",
    email="grace@acme.example",
    status=OwnerStatus.ACTIVE,
    created_at=NOW,
    updated_at=NOW,
)
FUNCTION = BusinessFunction(
    id="fn_01",
    name="release-engineering",
    description="Ship Acme's services",
    owner_id=OWNER.id,
    created_at=NOW,
    updated_at=NOW,
)
AGENT = Agent(
    id="agt_01",
    name="release-bot",
    binding=WorkloadBinding(spiffe_id=SpiffeId.parse("spiffe://acme.example/agents/release-bot")),
    owner_id=OWNER.id,
    function_id=FUNCTION.id,
    environments=frozenset({"staging", "prod"}),
    status=AgentStatus.ACTIVE,
    review_by=dt.date(2027, 1, 1),
    created_at=NOW,
    updated_at=NOW,
)
GITHUB = Tool(
    id="tool_01",
    name="github",
    description="Source hosting",
    actions=(
        ToolAction("read_repo", RiskClass.READ),
        ToolAction("merge_pr", RiskClass.WRITE),
        ToolAction("deploy", RiskClass.DEPLOY),
        ToolAction("delete_repo", RiskClass.ADMIN),
    ),
    resources=(
        ToolResource("repo:acme/*", Sensitivity.INTERNAL),
        ToolResource("env:production", Sensitivity.RESTRICTED, environment="prod"),
    ),
    created_at=NOW,
    updated_at=NOW,
)
STRIPE = Tool(
    id="tool_02",
    name="stripe",
    description="Payments",
    actions=(ToolAction("list_payouts", RiskClass.READ), ToolAction("refund", RiskClass.PAYMENT)),
    resources=(ToolResource("account:acme/*", Sensitivity.CONFIDENTIAL),),
    created_at=NOW,
    updated_at=NOW,
)
WAREHOUSE = Tool(
    id="tool_03",
    name="warehouse",
    description="Analytics warehouse",
    actions=(ToolAction("query", RiskClass.READ), ToolAction("export_table", RiskClass.EXPORT)),
    resources=(ToolResource("dataset:finance/*", Sensitivity.CONFIDENTIAL),),
    created_at=NOW,
    updated_at=NOW,
)
TOOLS = (GITHUB, STRIPE, WAREHOUSE)
TASK = Task(
    id="tsk_01",
    agent_id=AGENT.id,
    owner_id=OWNER.id,
    function_id=FUNCTION.id,
    workflow_id="wf_01",
    workflow_ref="ship-release@1",
    objective="Ship release 1.2.3",
    details=(AuthorizationDetail("github", ("read_repo",), ("repo:acme/*",)),),
    environment="prod",
    audience="github",
    created_at=NOW,
    deadline=NOW + dt.timedelta(hours=1),
)


def policy_request(
    *,
    tool: Tool = GITHUB,
    action: str = "read_repo",
    resource: str = "repo:acme/app",
    sensitivity: Sensitivity | None = None,
    resource_environment: str | None = None,
    environment: str = "prod",
    elevated: bool = False,
    context: Mapping[str, str | int | bool] | None = None,
    agent: Agent = AGENT,
    owner: Owner = OWNER,
    function: BusinessFunction | None = FUNCTION,
    task: Task = TASK,
    delegation_chain: tuple[str, ...] = (),
    now: dt.datetime = NOW,
) -> PolicyRequest:
    """A request of the release bot; the sensitivity and environment default to what the tool registers."""
    found = tool.action(action)
    assert found is not None, f"{tool.name} has no action {action}"
    registered = next((r for r in tool.resources if r.pattern.rstrip("*") in resource), None)
    return PolicyRequest(
        agent=agent,
        owner=owner,
        function=function,
        tool=tool,
        action=found,
        resource=resource,
        sensitivity=sensitivity
        if sensitivity is not None
        else (registered.sensitivity if registered else Sensitivity.INTERNAL),
        resource_environment=resource_environment
        if resource_environment is not None
        else (registered.environment if registered else None),
        task=replace(task, environment=environment),
        environment=environment,
        delegation_chain=delegation_chain,
        now=now,
        elevated=elevated,
        context=dict(context or {}),
    )


def policy_version(name: str, text: str, *, version: int = 1) -> PolicyVersion:
    return PolicyVersion(
        id=f"pol_{name}_{version}",
        name=name,
        version=version,
        text=text,
        sha256=PolicyVersion.digest(text),
        description="",
        created_by="operator",
        created_at=NOW,
    )


def active_set(*texts: tuple[str, str], generation: int = 1) -> ActivePolicySet:
    """An active set from (name, text) pairs, each at version 1."""
    return ActivePolicySet(generation=generation, versions=tuple(policy_version(n, t) for n, t in texts))
