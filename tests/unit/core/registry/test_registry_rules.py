"""Registry rules: traceability, unique identities, offboarding, workflow approval, standing-grant limits."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.factories import OPERATOR, make_agent, make_function, make_owner, make_tool, make_workflow, spiffe

from remit.core.events import InProcessEventBus
from remit.core.registry.events import AgentStatusChanged, OwnerOffboarded, WorkflowVersionEnded
from remit.core.registry.models import (
    AgentStatus,
    OidcSubject,
    OwnerStatus,
    RiskClass,
    Sensitivity,
    ToolAction,
    ToolResource,
    WorkflowState,
    WorkflowStep,
    WorkloadBinding,
)
from remit.core.registry.service import RegistryService
from remit.errors import Conflict, InvalidRequest, NotFound
from remit.testing import FrozenClock


def test_registered_owner_function_and_agent_are_traceable(registry: RegistryService) -> None:
    """An agent with an active owner, a function and a future review date is traceable."""
    owner = make_owner(registry)
    function = make_function(registry, owner)
    agent = make_agent(registry, owner=owner, function=function)

    assert registry.traceability(agent.id).is_traceable
    assert registry.untraceable_agents() == ()


@pytest.mark.parametrize(
    ("with_owner", "with_function", "problem"),
    [(False, True, "no_owner"), (True, False, "no_business_function"), (False, False, "no_owner")],
)
def test_agent_without_owner_or_function_is_listed_untraceable(
    registry: RegistryService, with_owner: bool, with_function: bool, problem: str
) -> None:
    """An agent missing its owner or business function is untraceable and appears in the over-exposed list."""
    owner = make_owner(registry)
    function = make_function(registry, owner)
    agent = make_agent(registry, owner=owner if with_owner else None, function=function if with_function else None)

    traceability = registry.traceability(agent.name)
    listed = registry.untraceable_agents()

    assert not traceability.is_traceable
    assert problem in traceability.problems
    assert [u.agent.id for u in listed] == [agent.id]


def test_agent_past_review_date_is_untraceable(registry: RegistryService, clock: FrozenClock) -> None:
    """Past its review_by date an agent is reported and may hold no credential."""
    owner = make_owner(registry)
    agent = make_agent(registry, owner=owner, function=make_function(registry, owner))

    clock.advance(dt.timedelta(days=91))

    assert registry.traceability(agent.id).problems == ("review_overdue",)


def test_review_date_must_be_in_the_future(registry: RegistryService) -> None:
    """Registering an agent whose review is already due is refused."""
    owner = make_owner(registry)
    with pytest.raises(InvalidRequest) as caught:
        make_agent(registry, owner=owner, function=make_function(registry, owner), review_by=dt.date(2026, 1, 15))
    assert caught.value.errors[0].loc == ("review_by",)


def test_identity_bound_to_another_agent_is_refused(registry: RegistryService) -> None:
    """Two agents can never share one workload identity."""
    owner = make_owner(registry)
    function = make_function(registry, owner)
    make_agent(registry, owner=owner, function=function, name="first", binding=spiffe("shared"))

    with pytest.raises(Conflict, match="already bound"):
        make_agent(registry, owner=owner, function=function, name="second", binding=spiffe("shared"))


def test_changing_binding_to_a_taken_identity_is_refused(registry: RegistryService) -> None:
    """A change cannot move an agent onto another agent's identity either."""
    owner = make_owner(registry)
    function = make_function(registry, owner)
    make_agent(registry, owner=owner, function=function, name="first", binding=spiffe("one"))
    second = make_agent(registry, owner=owner, function=function, name="second", binding=spiffe("two"))

    with pytest.raises(Conflict):
        registry.change_agent(second.id, binding=spiffe("one"), actor=OPERATOR)


def test_human_owner_identity_is_never_bound_to_an_agent(registry: RegistryService) -> None:
    """A person's sign-in identity cannot become an agent's workload identity."""
    human = OidcSubject.parse("https://login.acme.example", "ada")
    owner = registry.register_owner(name="Ada", email="ada@acme.example", human_identities=[human], actor=OPERATOR)
    function = make_function(registry, owner)

    with pytest.raises(InvalidRequest, match="human owner"):
        make_agent(registry, owner=owner, function=function, binding=WorkloadBinding(oidc=human))


def test_owner_email_as_oidc_subject_is_never_bound_to_an_agent(registry: RegistryService) -> None:
    """A token whose subject is an owner's email is a person's token, not a workload's."""
    owner = make_owner(registry)
    function = make_function(registry, owner)
    person = WorkloadBinding(oidc=OidcSubject.parse("https://ci.acme.example", "ADA@acme.example"))

    with pytest.raises(InvalidRequest, match="human owner"):
        make_agent(registry, owner=owner, function=function, binding=person)


def test_agent_identity_cannot_later_become_a_human_identity(registry: RegistryService) -> None:
    """Adding a human identity that an agent already uses is refused."""
    owner = make_owner(registry)
    binding = WorkloadBinding(oidc=OidcSubject.parse("https://ci.acme.example", "repo:acme/app"))
    make_agent(registry, owner=owner, function=make_function(registry, owner), binding=binding)
    assert binding.oidc is not None

    with pytest.raises(Conflict):
        registry.change_owner(owner.id, human_identities=[binding.oidc], actor=OPERATOR)


def test_offboarding_an_owner_suspends_their_agents_and_publishes_the_event(
    registry: RegistryService, bus: InProcessEventBus
) -> None:
    """Offboarding suspends every active agent of the owner and emits OwnerOffboarded for revocation."""
    seen: list[object] = []
    bus.subscribe(OwnerOffboarded, seen.append)
    bus.subscribe(AgentStatusChanged, seen.append)
    owner = make_owner(registry)
    other = make_owner(registry, name="Grace", email="grace@acme.example")
    function = make_function(registry, owner)
    mine = make_agent(registry, owner=owner, function=function, name="mine")
    theirs = make_agent(registry, owner=other, function=function, name="theirs")

    offboarded, suspended = registry.offboard_owner(owner.email, reason="left the company", actor=OPERATOR)

    assert offboarded.status is OwnerStatus.OFFBOARDED
    assert [a.id for a in suspended] == [mine.id]
    assert registry.get_agent(mine.id).status is AgentStatus.SUSPENDED
    assert registry.get_agent(theirs.id).status is AgentStatus.ACTIVE
    assert OwnerOffboarded(owner_id=owner.id, suspended_agent_ids=(mine.id,)) in seen
    assert AgentStatusChanged(agent_id=mine.id, status="suspended", reason="owner_offboarded") in seen
    assert "owner_offboarded" in registry.traceability(mine.id).problems


def test_offboarded_owner_cannot_be_offboarded_again(registry: RegistryService) -> None:
    owner = make_owner(registry)
    registry.offboard_owner(owner.id, reason="left", actor=OPERATOR)
    with pytest.raises(Conflict):
        registry.offboard_owner(owner.id, reason="left", actor=OPERATOR)


def test_untraceable_agent_cannot_be_reactivated(registry: RegistryService) -> None:
    """After offboarding, the suspended agent stays down until it has an active owner again."""
    owner = make_owner(registry)
    function = make_function(registry, owner)
    agent = make_agent(registry, owner=owner, function=function)
    registry.offboard_owner(owner.id, reason="left", actor=OPERATOR)

    with pytest.raises(Conflict, match="owner_offboarded"):
        registry.set_agent_status(agent.id, AgentStatus.ACTIVE, reason="back", actor=OPERATOR)

    heir = make_owner(registry, name="Grace", email="grace@acme.example")
    registry.change_agent(agent.id, owner=heir.email, actor=OPERATOR)
    assert registry.set_agent_status(agent.id, AgentStatus.ACTIVE, reason="new owner", actor=OPERATOR).is_active


def test_retirement_is_final(registry: RegistryService) -> None:
    owner = make_owner(registry)
    agent = make_agent(registry, owner=owner, function=make_function(registry, owner))
    registry.set_agent_status(agent.id, AgentStatus.RETIRED, reason="replaced", actor=OPERATOR)

    with pytest.raises(Conflict, match="final"):
        registry.set_agent_status(agent.id, AgentStatus.ACTIVE, reason="oops", actor=OPERATOR)
    with pytest.raises(Conflict):
        registry.change_agent(agent.id, environments=["dev"], actor=OPERATOR)


def test_business_function_needs_an_active_owner(registry: RegistryService) -> None:
    owner = make_owner(registry)
    registry.offboard_owner(owner.id, reason="left", actor=OPERATOR)
    with pytest.raises(InvalidRequest, match="active owner"):
        make_function(registry, owner)


def test_workflow_approval_pins_content_and_makes_it_immutable(registry: RegistryService) -> None:
    """An approved version records who, when and its content hash, and can no longer change."""
    owner = make_owner(registry)
    function = make_function(registry, owner)
    make_tool(registry)
    draft = make_workflow(registry, function)

    approved = registry.approve_workflow(draft.ref, actor="alice")

    assert approved.state is WorkflowState.APPROVED
    assert approved.approved_by == "alice"
    assert approved.content_hash == draft.compute_hash()
    with pytest.raises(Conflict, match="immutable"):
        registry.change_workflow_draft(approved.id, description="sneaky", actor=OPERATOR)
    with pytest.raises(Conflict, match="only a draft"):
        registry.approve_workflow(approved.id, actor="alice")


def test_new_workflow_version_needs_its_own_approval_and_supersedes_the_old(
    registry: RegistryService, bus: InProcessEventBus
) -> None:
    """Version 2 starts as a draft; approving it supersedes version 1 and publishes WorkflowVersionEnded."""
    ended: list[WorkflowVersionEnded] = []
    bus.subscribe(WorkflowVersionEnded, ended.append)
    owner = make_owner(registry)
    function = make_function(registry, owner)
    make_tool(registry)
    v1 = registry.approve_workflow(make_workflow(registry, function).id, actor="alice")
    v2 = make_workflow(registry, function, steps=(WorkflowStep("github", "read_file", "repo:acme/app*"),))

    assert (v2.version, v2.state) == (2, WorkflowState.DRAFT)
    assert registry.get_workflow(v1.id).state is WorkflowState.APPROVED

    registry.approve_workflow("release-docs@2", actor="bob")

    assert registry.get_workflow(v1.id).state is WorkflowState.SUPERSEDED
    assert ended == [WorkflowVersionEnded(workflow_id=v1.id, ref="release-docs@1", state="superseded")]


def test_approval_with_stale_hash_is_refused(registry: RegistryService) -> None:
    """The approver approves exactly what they reviewed: a changed draft fails the hash check."""
    owner = make_owner(registry)
    function = make_function(registry, owner)
    make_tool(registry)
    draft = make_workflow(registry, function)
    reviewed = draft.compute_hash()
    registry.change_workflow_draft(draft.id, max_duration=dt.timedelta(hours=2), actor=OPERATOR)

    with pytest.raises(Conflict, match="changed since you reviewed"):
        registry.approve_workflow(draft.id, actor="alice", expected_hash=reviewed)


def test_workflow_steps_must_name_registered_tools_actions_and_resources(registry: RegistryService) -> None:
    owner = make_owner(registry)
    function = make_function(registry, owner)
    make_tool(registry)
    for step, loc in [
        (WorkflowStep("gitlab", "read_file", "repo:*"), "tool"),
        (WorkflowStep("github", "delete_repo", "repo:*"), "action"),
        (WorkflowStep("github", "read_file", "bucket:*"), "resource"),
    ]:
        with pytest.raises(InvalidRequest) as caught:
            make_workflow(registry, function, steps=(step,))
        assert caught.value.errors[0].loc == ("steps", "0", loc)


def test_only_one_draft_per_workflow(registry: RegistryService) -> None:
    owner = make_owner(registry)
    function = make_function(registry, owner)
    make_tool(registry)
    make_workflow(registry, function)
    with pytest.raises(Conflict, match="already has a draft"):
        make_workflow(registry, function)


def test_retired_workflow_publishes_its_end(registry: RegistryService, bus: InProcessEventBus) -> None:
    ended: list[WorkflowVersionEnded] = []
    bus.subscribe(WorkflowVersionEnded, ended.append)
    owner = make_owner(registry)
    function = make_function(registry, owner)
    make_tool(registry)
    approved = registry.approve_workflow(make_workflow(registry, function).id, actor="alice")

    registry.retire_workflow(approved.ref, reason="no longer needed", actor=OPERATOR)

    assert [e.state for e in ended] == ["retired"]


@pytest.mark.parametrize(
    ("action", "resource", "message"),
    [
        ("merge_pr", "repo:acme/docs", "only read actions may be standing"),
        ("deploy", "repo:acme/app", "only read actions may be standing"),
        ("read_file", "repo:acme/payroll-2026", "restricted"),
        ("read_file", "repo:*", "restricted"),
        ("read_file", "bucket:x", "matches none"),
    ],
)
def test_standing_grant_beyond_low_risk_read_is_refused(
    registry: RegistryService, action: str, resource: str, message: str
) -> None:
    """Only read actions on public or internal resources may be standing; the error says why."""
    owner = make_owner(registry)
    agent = make_agent(registry, owner=owner, function=make_function(registry, owner))
    make_tool(registry)

    with pytest.raises(InvalidRequest, match=message):
        registry.create_grant(
            agent=agent.id, tool="github", action=action, resource=resource, reason="x", actor=OPERATOR
        )


def test_standing_read_on_internal_resources_is_allowed(registry: RegistryService) -> None:
    owner = make_owner(registry)
    agent = make_agent(registry, owner=owner, function=make_function(registry, owner))
    make_tool(registry)

    grant = registry.create_grant(
        agent=agent.name,
        tool="github",
        action="read_file",
        resource="repo:acme/app*",
        reason="docs bot",
        actor=OPERATOR,
    )

    assert registry.list_grants().items == (grant,)
    with pytest.raises(Conflict, match="already covers"):
        registry.create_grant(
            agent=agent.name, tool="github", action="read_file", resource="repo:acme/app-x", reason="x", actor=OPERATOR
        )


def test_stale_revision_is_a_conflict(registry: RegistryService) -> None:
    """Optimistic concurrency: a change based on an old revision loses."""
    owner = make_owner(registry)
    registry.change_owner(owner.id, name="Ada L.", actor=OPERATOR)
    with pytest.raises(Conflict, match="revision is 2"):
        registry.change_owner(owner.id, name="Ada", expected_revision=1, actor=OPERATOR)


def test_duplicates_are_conflicts(registry: RegistryService) -> None:
    owner = make_owner(registry)
    function = make_function(registry, owner)
    make_tool(registry)
    make_agent(registry, owner=owner, function=function)
    with pytest.raises(Conflict):
        make_owner(registry)
    with pytest.raises(Conflict):
        make_function(registry, owner)
    with pytest.raises(Conflict):
        make_tool(registry)
    with pytest.raises(Conflict):
        make_agent(registry, owner=owner, function=function, binding=spiffe("other"))


def test_unknown_references_are_not_found(registry: RegistryService) -> None:
    for call in (
        lambda: registry.get_owner("own_00000000000000000000000000"),
        lambda: registry.get_agent("ghost"),
        lambda: registry.get_tool("ghost"),
        lambda: registry.get_workflow("ghost@1"),
        lambda: registry.get_function("ghost"),
    ):
        with pytest.raises(NotFound):
            call()


def test_tool_validation(registry: RegistryService) -> None:
    with pytest.raises(InvalidRequest, match="unique"):
        registry.register_tool(
            name="x",
            description="",
            actions=(ToolAction("a", RiskClass.READ), ToolAction("a", RiskClass.WRITE)),
            resources=(ToolResource("*", Sensitivity.PUBLIC),),
            actor=OPERATOR,
        )
    with pytest.raises(InvalidRequest, match="at least one resource"):
        registry.register_tool(
            name="x", description="", actions=(ToolAction("a", RiskClass.READ),), resources=(), actor=OPERATOR
        )


def test_listing_pages_by_cursor(registry: RegistryService) -> None:
    """Pages are ordered by id and a cursor continues exactly where the last page stopped."""
    owners = [make_owner(registry, name=f"o{i}", email=f"o{i}@acme.example") for i in range(5)]

    first = registry.list_owners(limit=2)
    second = registry.list_owners(limit=2, after=first.next_cursor)
    third = registry.list_owners(limit=2, after=second.next_cursor)

    assert [o.id for o in first.items + second.items + third.items] == [o.id for o in owners]
    assert third.next_cursor is None
    with pytest.raises(InvalidRequest):
        registry.list_owners(limit=0)
