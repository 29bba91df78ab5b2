"""Each guardrail on its own: it passes what it should and names itself when it refuses."""

from __future__ import annotations

import datetime as dt

from dataclasses import replace

import pytest

from remit.core.authorization import guardrails as g
from remit.core.credentials.models import VerifiedCredential
from remit.core.registry.models import (
    Agent,
    AgentStatus,
    BusinessFunction,
    Grant,
    Owner,
    OwnerStatus,
    RiskClass,
    Sensitivity,
    SpiffeId,
    Tool,
    ToolAction,
    ToolResource,
    WorkflowState,
    WorkflowStep,
    WorkflowVersion,
    WorkloadBinding,
)
from remit.core.tasks.models import AuthorizationDetail, Task, TaskState

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def credential(**overrides: object) -> VerifiedCredential:
    values: dict[str, object] = {
        "jti": "crd_1",
        "task_id": "tsk_1",
        "agent_id": "agt_1",
        "subject": "spiffe://acme.example/bot",
        "client_id": "spiffe://acme.example/bot",
        "audience": "tool:github",
        "issued_at": NOW,
        "expires_at": NOW + dt.timedelta(minutes=5),
        "details": (AuthorizationDetail("github", ("read_file",), ("repo:acme/docs*",)),),
        "lineage": (),
        "epoch": 0,
        "environment": "prod",
        "cnf_jkt": None,
        "claims": {},
    }
    values.update(overrides)
    return VerifiedCredential(**values)  # type: ignore[arg-type]


def task(**overrides: object) -> Task:
    values: dict[str, object] = {
        "id": "tsk_1",
        "agent_id": "agt_1",
        "owner_id": "own_1",
        "function_id": "fn_1",
        "workflow_id": "wf_1",
        "workflow_ref": "release-docs@1",
        "objective": "publish docs",
        "details": (),
        "environment": "prod",
        "audience": "tool:github",
        "created_at": NOW - dt.timedelta(minutes=1),
        "deadline": NOW + dt.timedelta(minutes=10),
    }
    values.update(overrides)
    return Task(**values)  # type: ignore[arg-type]


AGENT = Agent(
    id="agt_1",
    name="bot",
    binding=WorkloadBinding(spiffe_id=SpiffeId.parse("spiffe://acme.example/bot")),
    owner_id="own_1",
    function_id="fn_1",
    environments=frozenset({"prod"}),
    status=AgentStatus.ACTIVE,
    review_by=dt.date(2026, 6, 1),
    created_at=NOW,
    updated_at=NOW,
)
OWNER = Owner(
    id="own_1", name="Alice", email="alice@acme.example", status=OwnerStatus.ACTIVE, created_at=NOW, updated_at=NOW
)
FUNCTION = BusinessFunction(id="fn_1", name="docs", description="", owner_id="own_1", created_at=NOW, updated_at=NOW)
TOOL = Tool(
    id="tool_1",
    name="github",
    description="",
    actions=(ToolAction("read_file", RiskClass.READ), ToolAction("merge_pr", RiskClass.WRITE)),
    resources=(ToolResource("repo:acme/docs*", Sensitivity.PUBLIC, environment="prod"),),
    created_at=NOW,
    updated_at=NOW,
)
WORKFLOW = WorkflowVersion(
    id="wf_1",
    name="release-docs",
    version=1,
    function_id="fn_1",
    description="",
    steps=(WorkflowStep("github", "read_file", "repo:acme/docs*"),),
    max_duration=dt.timedelta(hours=1),
    state=WorkflowState.APPROVED,
    created_at=NOW,
    updated_at=NOW,
)


def test_task_running() -> None:
    assert g.task_running(task(), credential(), NOW) is None
    assert g.task_running(None, credential(), NOW).id == g.TASK_RUNNING  # type: ignore[union-attr]
    assert g.task_running(task(agent_id="agt_2"), credential(), NOW) is not None
    assert g.task_running(task(state=TaskState.COMPLETED), credential(), NOW) is not None
    assert g.task_running(task(), credential(), NOW + dt.timedelta(hours=1)) is not None  # past the deadline
    assert g.task_running(task(epoch=1), credential(), NOW) is not None  # objective changed


def test_agent_traceable() -> None:
    today = NOW.date()
    assert g.agent_traceable(AGENT, OWNER, FUNCTION, today) is None
    assert g.agent_traceable(None, OWNER, FUNCTION, today) is not None
    assert g.agent_traceable(replace(AGENT, status=AgentStatus.SUSPENDED), OWNER, FUNCTION, today) is not None
    assert g.agent_traceable(AGENT, replace(OWNER, status=OwnerStatus.OFFBOARDED), FUNCTION, today) is not None
    assert g.agent_traceable(AGENT, OWNER, None, today) is not None
    assert g.agent_traceable(AGENT, OWNER, FUNCTION, dt.date(2026, 6, 2)).id == g.AGENT_TRACEABLE  # type: ignore[union-attr]


def test_known_action_and_resource() -> None:
    assert g.known_action(TOOL, "github", "read_file") is None
    assert g.known_action(None, "jira", "read").id == g.KNOWN_ACTION  # type: ignore[union-attr]
    assert g.known_action(TOOL, "github", "delete_repo") is not None
    assert g.known_resource(Sensitivity.PUBLIC, "repo:acme/docs") is None
    assert g.known_resource(None, "repo:x").id == g.KNOWN_RESOURCE  # type: ignore[union-attr]


def test_audience_matches() -> None:
    assert g.audience_matches(credential(), "github", ()) is None
    assert g.audience_matches(credential(), "jira", ()).id == g.AUDIENCE_MATCHES  # type: ignore[union-attr]
    assert g.audience_matches(credential(audience="gw:edge"), "jira", ("gw:edge",)) is None


def test_environment_matches() -> None:
    assert g.environment_matches(credential(), None, ()) is None
    assert g.environment_matches(credential(), "prod", {"prod"}) is None
    assert g.environment_matches(credential(), "dev", ()).id == g.ENVIRONMENT_MATCHES  # type: ignore[union-attr]
    assert g.environment_matches(credential(), None, {"staging"}) is not None


def test_within_objective() -> None:
    assert g.within_objective(credential(), WORKFLOW, "github", "read_file", "repo:acme/docs") is None
    outside_task = g.within_objective(credential(), WORKFLOW, "github", "read_file", "repo:acme/app")
    assert outside_task is not None
    assert outside_task.id == g.WITHIN_OBJECTIVE
    assert g.within_objective(credential(), None, "github", "read_file", "repo:acme/docs") is not None
    retired = replace(WORKFLOW, state=WorkflowState.RETIRED)
    assert g.within_objective(credential(), retired, "github", "read_file", "repo:acme/docs") is not None
    narrower = replace(WORKFLOW, steps=(WorkflowStep("github", "read_file", "repo:acme/docs-site"),))
    assert g.within_objective(credential(), narrower, "github", "read_file", "repo:acme/docs") is not None


@pytest.mark.parametrize(
    ("risk", "sensitivity", "covered"),
    [
        (RiskClass.READ, Sensitivity.PUBLIC, True),
        (RiskClass.READ, Sensitivity.INTERNAL, True),
        (RiskClass.READ, Sensitivity.CONFIDENTIAL, False),
        (RiskClass.WRITE, Sensitivity.PUBLIC, False),
        (RiskClass.PAYMENT, Sensitivity.PUBLIC, False),
    ],
)
def test_standing_grants_cover_only_low_risk_reads(risk: RiskClass, sensitivity: Sensitivity, covered: bool) -> None:
    grants = (
        Grant(
            id="grt_1",
            agent_id="agt_1",
            tool="github",
            action="read_file",
            resource="repo:acme/*",
            created_by="op",
            created_at=NOW,
        ),
    )
    assert g.standing_grant_covers(grants, risk, sensitivity, "github", "read_file", "repo:acme/x") is covered


def test_elevated_classes() -> None:
    assert not g.needs_elevation(RiskClass.READ)
    assert all(g.needs_elevation(c) for c in RiskClass if c is not RiskClass.READ)
