"""Task domain objects: the declaration (RFC 9396 authorization details), the task and its states."""

from __future__ import annotations

import datetime as dt

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

from remit.core.audit.models import AuditActor, AuditEvent
from remit.core.registry.models import WorkflowVersion, parse_environment, parse_name, parse_text
from remit.core.registry.patterns import parse_pattern, pattern_within
from remit.errors import InvalidRequest

__all__ = [
    "AUTHORIZATION_DETAILS_TYPE",
    "END_STATES",
    "AuthorizationDetail",
    "Task",
    "TaskParties",
    "TaskState",
    "details_within",
    "parse_authorization_details",
    "parse_objective",
    "within_workflow",
]

# RFC 9396 §2: the `type` of our authorization details objects.
AUTHORIZATION_DETAILS_TYPE = "remit_tool"
MAX_DETAILS = 64
MAX_OBJECTIVE = 2000


class TaskState(StrEnum):
    """running → completed | failed | cancelled | expired | revoked; every end is final."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REVOKED = "revoked"


END_STATES = frozenset(TaskState) - {TaskState.RUNNING}


@dataclass(frozen=True, slots=True, order=True)
class AuthorizationDetail:
    """One RFC 9396 authorization detail: a tool, the actions wanted on it, and the resource patterns."""

    tool: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "type": AUTHORIZATION_DETAILS_TYPE,
            "tool": self.tool,
            "actions": list(self.actions),
            "resources": list(self.resources),
        }

    def covers(self, tool: str, action: str, resource_pattern: str) -> bool:
        """True when this detail allows `action` on everything `resource_pattern` matches."""
        return (
            tool == self.tool
            and action in self.actions
            and any(pattern_within(resource_pattern, r) for r in self.resources)
        )

    @classmethod
    def parse(cls, raw: object, *, index: int = 0) -> Self:
        """Parse one detail object; unknown members, a wrong `type` or empty lists are InvalidRequest."""
        loc = f"authorization_details.{index}"
        if not isinstance(raw, dict):
            raise InvalidRequest("each authorization detail is a JSON object", field=loc)
        unknown = set(raw) - {"type", "tool", "actions", "resources"}
        if unknown:
            msg = f"unknown member(s): {', '.join(sorted(unknown))}"
            raise InvalidRequest(msg, field=loc)
        if raw.get("type") != AUTHORIZATION_DETAILS_TYPE:
            msg = f"type must be {AUTHORIZATION_DETAILS_TYPE!r}"
            raise InvalidRequest(msg, field=f"{loc}.type")
        tool, actions, resources = raw.get("tool"), raw.get("actions"), raw.get("resources")
        if not isinstance(tool, str):
            raise InvalidRequest("tool is a name", field=f"{loc}.tool")
        if not isinstance(actions, list) or not actions or not all(isinstance(a, str) for a in actions):
            raise InvalidRequest("actions is a non-empty list of names", field=f"{loc}.actions")
        if not isinstance(resources, list) or not resources or not all(isinstance(r, str) for r in resources):
            raise InvalidRequest("resources is a non-empty list of patterns", field=f"{loc}.resources")
        if len(actions) > MAX_DETAILS or len(resources) > MAX_DETAILS:
            msg = f"at most {MAX_DETAILS} actions and resources per detail"
            raise InvalidRequest(msg, field=loc)
        return cls(
            tool=parse_name(tool, field=f"{loc}.tool"),
            actions=tuple(sorted({parse_name(a, field=f"{loc}.actions") for a in actions})),
            resources=tuple(sorted({parse_pattern(r, field=f"{loc}.resources") for r in resources})),
        )


def parse_authorization_details(raw: object) -> tuple[AuthorizationDetail, ...]:
    """Parse an RFC 9396 `authorization_details` array into a sorted, de-duplicated tuple."""
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("authorization_details is a non-empty array", field="authorization_details")
    if len(raw) > MAX_DETAILS:
        msg = f"at most {MAX_DETAILS} authorization details"
        raise InvalidRequest(msg, field="authorization_details")
    return tuple(sorted({AuthorizationDetail.parse(item, index=i) for i, item in enumerate(raw)}))


def within_workflow(details: tuple[AuthorizationDetail, ...], workflow: WorkflowVersion) -> list[str]:
    """Every (tool, action, resource) requested that no step of the workflow covers; empty when all fit."""
    return [
        f"{d.tool}:{a} on {r}"
        for d in details
        for a in d.actions
        for r in d.resources
        if not any(s.tool == d.tool and s.action == a and pattern_within(r, s.resource) for s in workflow.steps)
    ]


def details_within(child: tuple[AuthorizationDetail, ...], parent: tuple[AuthorizationDetail, ...]) -> list[str]:
    """Every (tool, action, resource) of `child` that `parent` does not cover; empty when child ⊆ parent."""
    return [
        f"{d.tool}:{a} on {r}"
        for d in child
        for a in d.actions
        for r in d.resources
        if not any(p.covers(d.tool, a, r) for p in parent)
    ]


def parse_objective(raw: str) -> str:
    return parse_text(raw, field="objective", max_length=MAX_OBJECTIVE)


@dataclass(frozen=True, slots=True)
class TaskParties:
    """Who a task answers to: its agent, owner and workflow version (what the sweeper re-checks)."""

    agent_id: str
    owner_id: str
    workflow_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """One unit of work of one agent under one approved workflow version, with a deadline.

    `lineage` lists the ancestor task ids, nearest first: revocation checks it instead of walking a tree,
    so ending any ancestor ends this task's credentials at once. `epoch` increases on every context change
    (objective changed), which invalidates every credential issued under an earlier epoch. Every change
    to a stored task, its DPoP binding included, comes with a new `revision`.
    """

    id: str
    agent_id: str
    owner_id: str
    function_id: str
    workflow_id: str
    workflow_ref: str
    objective: str
    details: tuple[AuthorizationDetail, ...]
    environment: str
    audience: str
    created_at: dt.datetime
    deadline: dt.datetime
    state: TaskState = TaskState.RUNNING
    parent_id: str | None = None
    lineage: tuple[str, ...] = ()
    principal: str | None = None
    epoch: int = 0
    ended_at: dt.datetime | None = None
    end_reason: str | None = None
    revision: int = 1
    labels: dict[str, str] = field(default_factory=dict)
    # The DPoP key (`jkt`) its own-audience credentials are bound to (ADR 0016): fixed by the first bound one.
    dpop_jkt: str | None = None

    def __post_init__(self) -> None:
        parse_environment(self.environment)
        if self.deadline <= self.created_at:
            raise InvalidRequest("the deadline must be after the start", field="expected_duration_seconds")

    @property
    def depth(self) -> int:
        return len(self.lineage)

    @property
    def is_running(self) -> bool:
        return self.state is TaskState.RUNNING

    def remaining(self, now: dt.datetime) -> dt.timedelta:
        return max(self.deadline - now, dt.timedelta(0))

    def audit_event(
        self, *, event_id: str, event_type: str, occurred_at: dt.datetime, actor: AuditActor, data: dict[str, Any]
    ) -> AuditEvent:
        """An audit record about this task, correlated by its id (`txn`) and traced to agent, owner and function."""
        return AuditEvent(
            id=event_id,
            type=event_type,
            occurred_at=occurred_at,
            actor=actor,
            subject_kind="task",
            subject_id=self.id,
            data=data,
            task_id=self.id,
            agent_id=self.agent_id,
            owner_id=self.owner_id,
            function_id=self.function_id,
            correlation_id=self.id,
        )

    def effective_state(self, now: dt.datetime) -> TaskState:
        """The state as of `now`: a running task past its deadline is expired even before a sweep records it."""
        if self.state is TaskState.RUNNING and now >= self.deadline:
            return TaskState.EXPIRED
        return self.state
