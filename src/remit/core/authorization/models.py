"""The decision model: what an enforcement point asks (`AccessRequest`) and what it gets (`Decision`)."""

from __future__ import annotations

import datetime as dt

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from remit.core.registry.models import RiskClass, Sensitivity
from remit.errors import InvalidRequest

if TYPE_CHECKING:
    from remit.core.credentials.verification import DpopCheck
    from remit.core.registry.models import Agent, BusinessFunction, Owner, Tool, ToolAction
    from remit.core.tasks.models import Task

__all__ = [
    "REQUEST_CONTEXT_TYPES",
    "AccessRequest",
    "Decision",
    "Effect",
    "Elevation",
    "PolicyRequest",
    "PolicyResult",
    "Reason",
    "ReasonKind",
    "ResolvedInputs",
    "parse_request_context",
]


_MAX_CONTEXT_TEXT: Final = 1000

# The facts an enforcement point may add for policies (`context.request.<name>` in Cedar). A closed set:
# the policy schema declares each one, so a policy can be validated against it, and any other key is refused.
REQUEST_CONTEXT_TYPES: Final[Mapping[str, type]] = {
    "amount": int,  # in the currency's minor unit (cents)
    "currency": str,  # ISO 4217 code
    "record_count": int,  # rows or records an export or bulk action touches
    "reason": str,  # free text from the caller, for policies that require one
}


def parse_request_context(
    raw: Mapping[str, object], *, ignore_unknown: bool = False
) -> tuple[dict[str, str | int | bool], tuple[str, ...]]:
    """Check request facts against `REQUEST_CONTEXT_TYPES`; returns (facts, names ignored).

    Unknown names are refused unless `ignore_unknown` (AuthZEN contexts are open by design); a known
    name with a value of the wrong type is always refused, so a policy never compares across types.
    """
    facts: dict[str, str | int | bool] = {}
    ignored: list[str] = []
    for name, value in raw.items():
        kind = REQUEST_CONTEXT_TYPES.get(name)
        if kind is None:
            if not ignore_unknown:
                known = ", ".join(sorted(REQUEST_CONTEXT_TYPES))
                raise InvalidRequest(f"unknown context fact {name!r}; known: {known}", field=f"context.{name}")
            ignored.append(name)
            continue
        if not isinstance(value, str | int | bool) or type(value) is not kind:
            raise InvalidRequest(f"context fact {name!r} must be a {kind.__name__}", field=f"context.{name}")
        if isinstance(value, str) and len(value) > _MAX_CONTEXT_TEXT:
            raise InvalidRequest(f"context fact {name!r} is too long", field=f"context.{name}")
        facts[name] = value
    return facts, tuple(sorted(ignored))


class Effect(StrEnum):
    """The answer: allowed, refused, or allowed only after a human approves (just-in-time elevation)."""

    ALLOW = "allow"
    DENY = "deny"
    STEP_UP = "step_up"


class ReasonKind(StrEnum):
    """Where a reason comes from: a built-in guardrail, a Cedar policy, or an error while deciding."""

    GUARDRAIL = "guardrail"
    POLICY = "policy"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason for a decision: `id` names the guardrail, the Cedar policy id, or the error code.

    `detail` is safe to show the caller; `internal` (the precise reason a credential failed, say) goes
    to the audit record only, so the API cannot be used to tell which check a forged token failed.
    """

    kind: ReasonKind
    id: str
    detail: str = ""
    internal: str = ""

    def as_json(self, *, include_internal: bool = False) -> dict[str, str]:
        body = {"kind": self.kind.value, "id": self.id}
        if self.detail:
            body["detail"] = self.detail
        if include_internal and self.internal:
            body["internal"] = self.internal
        return body


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessRequest:
    """A question from an enforcement point: may the holder of `token` do `action` on `resource` now.

    `audience` is the enforcement point asking (a tool or a gateway); the credential must be minted
    for it. `environment` and `sensitivity` are what the enforcement point believes; the registry's
    facts win, and a stated value may only make the request stricter. `context` carries extra facts
    for policies (amounts, record counts...): scalars only. `subject`, when given (AuthZEN's
    `subject.id`), must name the credential's agent.
    """

    token: str = field(repr=False)
    audience: str
    subject: str | None = None
    tool: str
    action: str
    resource: str
    environment: str | None = None
    sensitivity: Sensitivity | None = None
    context: Mapping[str, str | int | bool] = field(default_factory=dict)
    dpop: DpopCheck | None = None
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedInputs:
    """The facts the decision was made on, as far as they were established (for audit and explain)."""

    task_id: str | None = None
    agent_id: str | None = None
    owner_id: str | None = None
    function_id: str | None = None
    workflow: str | None = None
    objective: str | None = None
    tool: str = ""
    action: str = ""
    resource: str = ""
    risk_class: RiskClass | None = None
    sensitivity: Sensitivity | None = None
    environment: str | None = None
    delegation_chain: tuple[str, ...] = ()
    credential_fingerprint: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "agent_id": self.agent_id,
            "owner_id": self.owner_id,
            "function_id": self.function_id,
            "workflow": self.workflow,
            "objective": self.objective,
            "tool": self.tool,
            "action": self.action,
            "resource": self.resource,
            "risk_class": self.risk_class.value if self.risk_class else None,
            "sensitivity": self.sensitivity.label if self.sensitivity is not None else None,
            "environment": self.environment,
            "delegation_chain": list(self.delegation_chain),
            "credential_jti_hmac": self.credential_fingerprint,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The decision: effect, every reason, the id the audit record carries, and the policy version used."""

    id: str
    effect: Effect
    reasons: tuple[Reason, ...]
    policy_version: int | None
    decided_at: dt.datetime
    inputs: ResolvedInputs
    elevation_id: str | None = None
    approval_id: str | None = None

    @property
    def allowed(self) -> bool:
        return self.effect is Effect.ALLOW

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "decision_id": self.id,
            "effect": self.effect.value,
            "reasons": [r.as_json() for r in self.reasons],
            "policy_version": self.policy_version,
            "decided_at": self.decided_at.isoformat(),
        }
        if self.elevation_id is not None:
            body["elevation_id"] = self.elevation_id
        if self.approval_id is not None:
            body["approval_id"] = self.approval_id
        return body


@dataclass(frozen=True, slots=True, kw_only=True)
class Elevation:
    """A live just-in-time permission for one action on one resource within one task (approvals issue)."""

    id: str
    task_id: str
    tool: str
    action: str
    resource: str
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyRequest:
    """What the policy engine sees: registry facts and the task, never the raw token.

    Every field is established by the guardrails first (the agent and owner are active, the
    action is in the task's scope...), so policies only ever narrow an answer the guardrails allow.
    """

    agent: Agent
    owner: Owner
    function: BusinessFunction | None
    tool: Tool
    action: ToolAction
    resource: str
    sensitivity: Sensitivity
    resource_environment: str | None
    task: Task
    environment: str
    delegation_chain: tuple[str, ...]
    now: dt.datetime
    elevated: bool
    context: Mapping[str, str | int | bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """Cedar's answer: allowed only on an explicit permit and no forbid; the determining policy ids; errors.

    `policy_version` is the generation of the policy set that produced this answer (None when none
    was loaded): read it here rather than from the evaluator, which may swap sets in between.
    """

    allowed: bool
    policy_ids: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    policy_version: int | None = None
