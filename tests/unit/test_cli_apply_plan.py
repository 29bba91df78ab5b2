"""The `remit apply` file parser and planner: pure comparisons of an organisation file with server state."""

from __future__ import annotations

import datetime as dt

from pathlib import Path
from typing import Literal

import pytest

from remit.cli.orgfile import Action, OrgFile, ServerState, Step, load_org_file, parse_org, plan
from remit.errors import InvalidRequest
from remit.wire.registry import AgentOut, FunctionOut, GrantOut, OwnerOut, ToolOut, WorkflowOut

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "acme.yaml"
WHEN = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)

SMALL = """
owners:
  - {name: Ada Lovelace, email: Ada@Acme.example}
functions:
  - {name: billing, description: Bill customers., owner: ada@acme.example}
tools:
  - name: stripe
    actions: [{name: list_payouts, risk_class: read}, {name: refund, risk_class: payment}]
    resources: [{pattern: "account:acme/*", sensitivity: internal}]
workflows:
  - name: refund
    function: billing
    steps: [{tool: stripe, action: refund, resource: "account:acme/*"}]
    max_duration: 30m
    approve: true
agents:
  - name: billing-bot
    identity: {spiffe_id: "spiffe://acme.example/agents/billing-bot"}
    owner: ada@acme.example
    function: billing
    environments: [prod]
    review_by: 2027-01-01
grants:
  - {agent: billing-bot, tool: stripe, action: list_payouts, resource: "account:acme/*", reason: Daily report.}
"""


def _state_matching(
    org: OrgFile, *, workflow_state: Literal["draft", "approved", "retired"] = "approved"
) -> ServerState:
    """What the server would hold after applying `org` (ids are stable fakes)."""
    owners = [
        OwnerOut(
            id=f"own_{i}",
            name=o.name,
            email=o.email.lower(),
            status="active",
            human_identities=o.human_identities,
            created_at=WHEN,
            updated_at=WHEN,
            offboarded_at=None,
            revision=1,
        )
        for i, o in enumerate(org.owners)
    ]
    state = ServerState(owners=owners)
    functions = [
        FunctionOut(
            id=f"fn_{i}",
            name=f.name,
            description=f.description,
            owner_id=state.owner_id(f.owner) or "own_missing",
            created_at=WHEN,
            updated_at=WHEN,
            revision=1,
        )
        for i, f in enumerate(org.functions)
    ]
    state = ServerState(owners=owners, functions=functions)
    tools = [
        ToolOut(
            id=f"tool_{i}",
            name=t.name,
            description=t.description,
            actions=list(reversed(t.actions)),  # order on the server does not matter
            resources=t.resources,
            created_at=WHEN,
            updated_at=WHEN,
            revision=1,
        )
        for i, t in enumerate(org.tools)
    ]
    workflows = [
        WorkflowOut(
            id=f"wf_{i}",
            name=w.name,
            version=1,
            ref=f"{w.name}@1",
            function_id=state.function_id(w.function) or "fn_missing",
            description=w.description,
            steps=w.steps,
            max_duration_seconds=w.max_duration,
            state=workflow_state,
            content_hash="sha256:x",
            approved_by=None,
            approved_at=None,
            ended_at=None,
            created_at=WHEN,
            updated_at=WHEN,
            revision=1,
        )
        for i, w in enumerate(org.workflows)
    ]
    agents = [
        AgentOut(
            id=f"agt_{i}",
            name=a.name,
            identity=a.identity,
            identity_key="key",
            owner_id=state.owner_id(a.owner),
            function_id=state.function_id(a.function),
            environments=sorted(a.environments),
            status="active",
            review_by=a.review_by,
            description=a.description,
            created_at=WHEN,
            updated_at=WHEN,
            revision=1,
        )
        for i, a in enumerate(org.agents)
    ]
    by_name = {a.name: a.id for a in agents}
    grants = [
        GrantOut(
            id=f"grt_{i}",
            agent_id=by_name[g.agent],
            tool=g.tool,
            action=g.action,
            resource=g.resource,
            reason=g.reason,
            created_by="operator",
            created_at=WHEN,
        )
        for i, g in enumerate(org.grants)
    ]
    return ServerState(owners, functions, tools, workflows, agents, grants)


def _actions(steps: list[Step]) -> dict[str, Action]:
    return {f"{s.kind} {s.key}": s.action for s in steps}


def _step(steps: list[Step], kind: str) -> Step:
    return next(s for s in steps if s.kind == kind)


def test_empty_server_creates_everything_in_dependency_order() -> None:
    """Against an empty server every object is a create, ordered owners → functions → tools → workflows → agents → grants."""
    steps = plan(parse_org(SMALL, source="org.yaml"), ServerState())
    assert [s.kind for s in steps] == ["owner", "function", "tool", "workflow", "agent", "grant"]
    assert {s.action for s in steps} == {Action.CREATE}
    assert all(s.run is not None for s in steps)
    assert _step(steps, "owner").key == "ada@acme.example"


def test_matching_server_is_all_unchanged() -> None:
    """When the server already holds the file's content nothing is planned, whatever the list order on the server."""
    org = parse_org(SMALL, source="org.yaml")
    steps = plan(org, _state_matching(org))
    assert {s.action for s in steps} == {Action.UNCHANGED}
    assert all(s.run is None for s in steps)


def test_example_organisation_plans_cleanly() -> None:
    """examples/acme.yaml parses, creates 13 objects on an empty server and is unchanged against itself."""
    org = load_org_file(EXAMPLE)
    assert (len(org.owners), len(org.functions), len(org.workflows), len(org.agents)) == (2, 2, 2, 3)
    assert {t.name for t in org.tools} == {"github", "stripe", "warehouse"}
    assert all(w.approve for w in org.workflows)
    assert len(plan(org, ServerState())) == 13
    assert {s.action for s in plan(org, _state_matching(org))} == {Action.UNCHANGED}


def test_changed_agent_fields_are_listed() -> None:
    """A different review date and environments make the agent a change that names both fields."""
    org = parse_org(SMALL, source="org.yaml")
    state = _state_matching(org)
    changed = parse_org(
        SMALL.replace("review_by: 2027-01-01", "review_by: 2027-06-30").replace("[prod]", "[prod, staging]"),
        source="org.yaml",
    )
    agent = _step(plan(changed, state), "agent")
    assert agent.action is Action.CHANGE
    assert any(c.startswith("review_by: 2027-01-01 → 2027-06-30") for c in agent.changes)
    assert any(c.startswith("environments:") for c in agent.changes)


def test_changed_approved_workflow_becomes_a_new_version() -> None:
    """An approved version is immutable: a different step list plans version 2 (and its approval)."""
    org = parse_org(SMALL, source="org.yaml")
    state = _state_matching(org)
    changed = parse_org(SMALL.replace("action: refund, resource", "action: list_payouts, resource"), source="org.yaml")
    workflow = _step(plan(changed, state), "workflow")
    assert workflow.action is Action.CHANGE
    assert workflow.changes == ("steps", "version 2 and approve")


def test_unapproved_draft_with_same_content_is_approved() -> None:
    """A draft that already has the file's content only needs its approval."""
    org = parse_org(SMALL, source="org.yaml")
    workflow = _step(plan(org, _state_matching(org, workflow_state="draft")), "workflow")
    assert workflow.action is Action.CHANGE
    assert workflow.changes == ("approve draft refund@1",)


def test_retired_workflow_is_recreated() -> None:
    """A file that still declares a retired workflow plans its next version."""
    org = parse_org(SMALL, source="org.yaml")
    workflow = _step(plan(org, _state_matching(org, workflow_state="retired")), "workflow")
    assert workflow.action is Action.CHANGE
    assert workflow.changes == ("refund@1 is retired: version 2 and approve",)


def test_missing_grant_is_created_and_extra_objects_are_left_alone() -> None:
    """Apply only adds: a grant missing on the server is created; objects the file omits are not planned at all."""
    org = parse_org(SMALL, source="org.yaml")
    state = _state_matching(org)
    without_grant = ServerState(state.owners, state.functions, state.tools, state.workflows, state.agents, ())
    assert _step(plan(org, without_grant), "grant").action is Action.CREATE
    assert plan(OrgFile(), state) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("owners: [", "org.yaml:1:10: "),
        ("- 1\n- 2\n", "org.yaml: the top level must be a mapping"),
        ("owner: []", "org.yaml: owner: Extra inputs are not permitted"),
        (SMALL.replace("review_by: 2027-01-01", "review_by: soon"), "org.yaml: agents[0].review_by: "),
        (SMALL.replace("max_duration: 30m", "max_duration: forever"), "org.yaml: workflows[0].max_duration: "),
        (SMALL.replace("risk_class: payment", "risk_class: yolo"), "org.yaml: tools[0].actions[1].risk_class: "),
        (
            SMALL.replace("environments: [prod]", "environments: [prod]\n    colour: blue"),
            "org.yaml: agents[0].colour: Extra inputs are not permitted",
        ),
    ],
)
def test_bad_files_are_one_invalid_request_naming_the_path(text: str, expected: str) -> None:
    """Invalid YAML or schema errors are one InvalidRequest whose message names the file and the path in it."""
    with pytest.raises(InvalidRequest) as caught:
        parse_org(text, source="org.yaml")
    assert caught.value.message.startswith(expected), caught.value.message
    assert "\n" not in caught.value.message


def test_duplicate_keys_are_refused() -> None:
    """Two entries with the same key (emails compare case-insensitively) are an invalid file."""
    text = "owners:\n  - {name: A, email: a@acme.example}\n  - {name: B, email: A@acme.example}\n"
    with pytest.raises(InvalidRequest, match="appears twice"):
        parse_org(text, source="org.yaml")


def test_empty_file_is_an_empty_organisation() -> None:
    """An empty file plans nothing."""
    assert plan(parse_org("", source="org.yaml"), ServerState()) == []
