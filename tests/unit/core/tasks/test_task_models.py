"""Task declarations: RFC 9396 authorization details parse strictly and stay inside their workflow."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt

from typing import Any

import pytest

from hypothesis import given
from hypothesis import strategies as st

from remit.core.registry.models import WorkflowState, WorkflowStep, WorkflowVersion
from remit.core.tasks.models import (
    AuthorizationDetail,
    Task,
    TaskState,
    details_within,
    parse_authorization_details,
    within_workflow,
)
from remit.errors import InvalidRequest

NOW = dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)


def _workflow(*steps: WorkflowStep) -> WorkflowVersion:
    return WorkflowVersion(
        id="wf_1",
        name="release",
        version=1,
        function_id="fn_1",
        description="",
        steps=steps,
        max_duration=dt.timedelta(hours=1),
        state=WorkflowState.APPROVED,
        created_at=NOW,
        updated_at=NOW,
    )


def _detail(
    tool: str = "github", actions: list[str] | None = None, resources: list[str] | None = None
) -> dict[str, Any]:
    return {
        "type": "remit_tool",
        "tool": tool,
        "actions": actions or ["read_file"],
        "resources": resources or ["repo:acme/docs"],
    }


def test_details_parse_sorted_and_deduplicated() -> None:
    """Duplicate actions and resources collapse, and equal details compare equal whatever their order."""
    parsed = parse_authorization_details([_detail(actions=["b", "a", "a"]), _detail(actions=["a", "b"])])
    assert parsed == (AuthorizationDetail("github", ("a", "b"), ("repo:acme/docs",)),)


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        ([], ("authorization_details",)),
        ({"type": "remit_tool"}, ("authorization_details",)),
        (["x"], ("authorization_details", "0")),
        ([{**_detail(), "type": "payment_initiation"}], ("authorization_details", "0", "type")),
        ([{**_detail(), "extra": 1}], ("authorization_details", "0")),
        ([{**_detail(), "actions": []}], ("authorization_details", "0", "actions")),
        ([{**_detail(), "resources": "repo:*"}], ("authorization_details", "0", "resources")),
        ([_detail(tool="Bad Tool")], ("authorization_details", "0", "tool")),
    ],
)
def test_malformed_details_name_the_failing_member(raw: object, loc: tuple[str, ...]) -> None:
    """Every malformed declaration is a 400 that points at the member at fault."""
    with pytest.raises(InvalidRequest) as caught:
        parse_authorization_details(raw)
    assert caught.value.errors[0].loc == loc


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@given(json_values)
def test_arbitrary_json_is_parsed_or_refused_cleanly(raw: object) -> None:
    """The parser never fails with anything but InvalidRequest."""
    with contextlib.suppress(InvalidRequest):
        parse_authorization_details(raw)


def test_request_inside_workflow_fits() -> None:
    """A narrower resource pattern than the workflow's step fits; another action or a wider pattern does not."""
    workflow = _workflow(WorkflowStep("github", "read_file", "repo:acme/*"))
    inside = parse_authorization_details([_detail(resources=["repo:acme/docs*"])])
    wider = parse_authorization_details([_detail(resources=["repo:*"])])
    other_action = parse_authorization_details([_detail(actions=["merge_pr"])])

    assert within_workflow(inside, workflow) == []
    assert within_workflow(wider, workflow) == ["github:read_file on repo:*"]
    assert within_workflow(other_action, workflow) == ["github:merge_pr on repo:acme/docs"]


def test_child_details_must_be_within_parent() -> None:
    """Delegation never widens: every child (tool, action, resource) must be covered by the parent."""
    parent = parse_authorization_details([_detail(actions=["read_file", "merge_pr"], resources=["repo:acme/*"])])
    narrower = parse_authorization_details([_detail(resources=["repo:acme/docs"])])
    wider = parse_authorization_details([_detail(resources=["repo:*"])])

    assert details_within(narrower, parent) == []
    assert details_within(wider, parent) == ["github:read_file on repo:*"]


def test_running_task_past_deadline_is_effectively_expired() -> None:
    task = Task(
        id="tsk_1",
        agent_id="agt_1",
        owner_id="own_1",
        function_id="fn_1",
        workflow_id="wf_1",
        workflow_ref="release@1",
        objective="ship docs",
        details=(),
        environment="prod",
        audience="tool:github",
        created_at=NOW,
        deadline=NOW + dt.timedelta(minutes=5),
    )
    assert task.effective_state(NOW) is TaskState.RUNNING
    assert task.effective_state(NOW + dt.timedelta(minutes=5)) is TaskState.EXPIRED
    assert task.remaining(NOW + dt.timedelta(minutes=10)) == dt.timedelta(0)
    with pytest.raises(InvalidRequest):
        dataclasses.replace(task, deadline=NOW)
