"""Guardrails: invariants checked before any policy, which no policy and no setting can loosen.

Each guardrail is a small named function that returns `None` when it passes and a `Reason` (its
own id, with a detail) when it does not. The decision service runs them in a fixed order; the
first refusal decides. Cedar only ever sees requests every guardrail let through.
"""

from __future__ import annotations

import datetime as dt

from collections.abc import Collection, Sequence
from typing import Final

from remit.core.authorization.models import Reason, ReasonKind
from remit.core.credentials.models import VerifiedCredential
from remit.core.registry.models import (
    Agent,
    BusinessFunction,
    Grant,
    Owner,
    RiskClass,
    Sensitivity,
    Tool,
    WorkflowState,
    WorkflowVersion,
)
from remit.core.registry.patterns import matches
from remit.core.tasks.models import Task, TaskState

__all__ = [
    "AGENT_TRACEABLE",
    "AUDIENCE_MATCHES",
    "CREDENTIAL_VERIFIES",
    "ELEVATED_CLASSES",
    "ELEVATION_REQUIRED",
    "ENVIRONMENT_MATCHES",
    "GUARDRAILS",
    "KNOWN_ACTION",
    "KNOWN_RESOURCE",
    "OBJECTIVE_THRESHOLD",
    "POLICY_SET_LOADED",
    "TASK_RUNNING",
    "WITHIN_OBJECTIVE",
    "agent_traceable",
    "audience_matches",
    "environment_matches",
    "known_action",
    "known_resource",
    "needs_elevation",
    "standing_grant_covers",
    "task_running",
    "within_objective",
]

CREDENTIAL_VERIFIES: Final = "credential_verifies"
TASK_RUNNING: Final = "task_running"
AGENT_TRACEABLE: Final = "agent_traceable"
KNOWN_ACTION: Final = "known_action"
KNOWN_RESOURCE: Final = "known_resource"
AUDIENCE_MATCHES: Final = "audience_matches"
WITHIN_OBJECTIVE: Final = "within_objective"
ENVIRONMENT_MATCHES: Final = "environment_matches"
ELEVATION_REQUIRED: Final = "elevation_required"
POLICY_SET_LOADED: Final = "policy_set_loaded"
OBJECTIVE_THRESHOLD: Final = "objective_threshold"
STANDING_GRANT: Final = "standing_grant"

# Every guardrail, in the order they run (documented in docs/decisions.md).
GUARDRAILS: Final = (
    CREDENTIAL_VERIFIES,
    TASK_RUNNING,
    AGENT_TRACEABLE,
    KNOWN_ACTION,
    KNOWN_RESOURCE,
    AUDIENCE_MATCHES,
    ENVIRONMENT_MATCHES,
    WITHIN_OBJECTIVE,
    ELEVATION_REQUIRED,
    POLICY_SET_LOADED,
    OBJECTIVE_THRESHOLD,
)

# Risk classes that always need a just-in-time elevation bound to task, action and resource.
ELEVATED_CLASSES: Final = frozenset(
    {RiskClass.WRITE, RiskClass.DEPLOY, RiskClass.PAYMENT, RiskClass.EXPORT, RiskClass.ADMIN}
)

# A standing grant serves only reads of data no more sensitive than this (C16).
STANDING_CEILING: Final = Sensitivity.INTERNAL


def _refuse(guardrail: str, detail: str) -> Reason:
    return Reason(ReasonKind.GUARDRAIL, guardrail, detail)


def task_running(task: Task | None, credential: VerifiedCredential, now: dt.datetime) -> Reason | None:
    """The credential's task exists, is running, and is at the credential's epoch (objective unchanged)."""
    if task is None or task.agent_id != credential.agent_id:
        return _refuse(TASK_RUNNING, "no such task for this agent")
    state = task.effective_state(now)
    if state is not TaskState.RUNNING:
        return _refuse(TASK_RUNNING, f"task is {state.value}")
    if task.epoch != credential.epoch:
        return _refuse(TASK_RUNNING, "the objective changed since the credential was issued")
    return None


def agent_traceable(
    agent: Agent | None, owner: Owner | None, function: BusinessFunction | None, today: dt.date
) -> Reason | None:
    """The agent is active, its owner active, its business function present and its review not overdue."""
    if agent is None or not agent.is_active:
        return _refuse(AGENT_TRACEABLE, "agent is not active")
    if owner is None or not owner.is_active:
        return _refuse(AGENT_TRACEABLE, "owner is not active")
    if function is None:
        return _refuse(AGENT_TRACEABLE, "agent has no business function")
    if agent.review_overdue(today):
        return _refuse(AGENT_TRACEABLE, "agent review is overdue")
    return None


def known_action(tool: Tool | None, tool_name: str, action: str) -> Reason | None:
    """The tool and the action are registered: an unknown action has no risk class, so it is refused."""
    if tool is None:
        return _refuse(KNOWN_ACTION, f"no tool {tool_name!r}")
    if tool.action(action) is None:
        return _refuse(KNOWN_ACTION, f"tool {tool_name!r} has no action {action!r}")
    return None


def known_resource(registered: Sensitivity | None, resource: str) -> Reason | None:
    """The resource matches a registered resource of the tool: its sensitivity comes from the registry."""
    if registered is None:
        return _refuse(KNOWN_RESOURCE, f"resource {resource!r} is not registered for this tool")
    return None


def audience_matches(credential: VerifiedCredential, tool: str, gateway_audiences: Collection[str]) -> Reason | None:
    """The credential was minted for this tool, or for a gateway that fronts every tool."""
    if credential.audience == f"tool:{tool}" or credential.audience in gateway_audiences:
        return None
    return _refuse(AUDIENCE_MATCHES, "the credential is not for this tool")


def environment_matches(
    credential: VerifiedCredential, stated: str | None, resource_environments: Collection[str]
) -> Reason | None:
    """The enforcement point's environment and every registered environment of the resource equal the credential's."""
    if stated is not None and stated != credential.environment:
        return _refuse(ENVIRONMENT_MATCHES, f"request is for {stated!r}, the credential for {credential.environment!r}")
    for environment in sorted(resource_environments):
        if environment != credential.environment:
            msg = f"resource lives in {environment!r}, the credential is for {credential.environment!r}"
            return _refuse(ENVIRONMENT_MATCHES, msg)
    return None


def within_objective(
    credential: VerifiedCredential, workflow: WorkflowVersion | None, tool: str, action: str, resource: str
) -> Reason | None:
    """The call is inside the task's `authorization_details` and its approved workflow version (C14, C15)."""
    if not credential.allows(tool, action, resource):
        return _refuse(WITHIN_OBJECTIVE, "action or resource outside the task's authorization_details")
    if workflow is None or workflow.state is not WorkflowState.APPROVED:
        return _refuse(WITHIN_OBJECTIVE, "the task's workflow version is no longer approved")
    if not any(s.tool == tool and s.action == action and matches(s.resource, resource) for s in workflow.steps):
        return _refuse(WITHIN_OBJECTIVE, "action or resource outside the workflow version")
    return None


def standing_grant_covers(
    grants: Sequence[Grant], risk_class: RiskClass, sensitivity: Sensitivity, tool: str, action: str, resource: str
) -> bool:
    """A standing grant serves only low-risk reads (C16): read on public or internal data, matched exactly."""
    if risk_class is not RiskClass.READ or sensitivity > STANDING_CEILING:
        return False
    return any(g.tool == tool and g.action == action and matches(g.resource, resource) for g in grants)


def needs_elevation(risk_class: RiskClass) -> bool:
    """Write, deploy, payment, export and admin always need a just-in-time elevation (C16, C17)."""
    return risk_class in ELEVATED_CLASSES
