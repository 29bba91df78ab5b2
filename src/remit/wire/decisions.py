"""Decision payloads: the native `/v1/decisions` shape and OpenID AuthZEN 1.0 evaluation(s).

The SDK and any enforcement point use the same shapes. A decision is always answered with 200 and
its effect: a deny is a value, not an error.
"""

from __future__ import annotations

import datetime as dt

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AuthzenAction",
    "AuthzenConfiguration",
    "AuthzenEvaluation",
    "AuthzenEvaluationIn",
    "AuthzenEvaluationOut",
    "AuthzenEvaluationsIn",
    "AuthzenEvaluationsOut",
    "AuthzenOptions",
    "AuthzenResource",
    "AuthzenSubject",
    "DecisionIn",
    "DecisionOut",
    "DpopIn",
    "ReasonOut",
]

ContextValue = str | int | bool


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=16_384)


class DpopIn(_In):
    """The DPoP proof the agent sent to the enforcement point, with the request it was made for (RFC 9449)."""

    proof: str = Field(min_length=1, max_length=8192)
    method: str = Field(min_length=1, max_length=16, examples=["POST"])
    url: str = Field(min_length=1, max_length=2048, examples=["https://tools.example/github/merge"])


class DecisionIn(_In):
    """A question from an enforcement point: may this task credential do this action on this resource now."""

    credential: str = Field(min_length=1, max_length=16_384, description="the agent's task credential")
    tool: str = Field(min_length=1, max_length=63)
    action: str = Field(min_length=1, max_length=63)
    resource: str = Field(min_length=1, max_length=512)
    audience: str | None = Field(
        default=None, max_length=255, description="the enforcement point's audience; default tool:<tool>"
    )
    environment: str | None = Field(default=None, max_length=63, description="may only make the request stricter")
    sensitivity: Literal["public", "internal", "confidential", "restricted"] | None = None
    context: dict[str, ContextValue] = Field(default_factory=dict, max_length=16)
    dpop: DpopIn | None = None
    correlation_id: str | None = Field(default=None, max_length=128)


class ReasonOut(BaseModel):
    """A guardrail, policy or error that decided; credential failures never say which check failed."""

    kind: Literal["guardrail", "policy", "error"]
    id: str
    detail: str | None = None


class DecisionOut(BaseModel):
    """The decision, always with reasons and the id its audit record carries."""

    decision_id: str
    effect: Literal["allow", "deny", "step_up"]
    allowed: bool = Field(description="true only for a real allow: an enforcement point acts on this alone")
    dry_run: bool = Field(default=False, description="an explain: `effect` says what would happen; nothing was used")
    reasons: list[ReasonOut]
    policy_version: int | None
    decided_at: dt.datetime
    task_id: str | None = None
    elevation_id: str | None = None
    approval_id: str | None = None
    inputs: dict[str, Any] | None = Field(default=None, description="with ?explain=true: the facts decided on")


# ------------------------------------------------------------------ OpenID AuthZEN 1.0


class _Open(BaseModel):
    # AuthZEN entities are open: unknown members are allowed and ignored.
    model_config = ConfigDict(extra="allow", str_max_length=16_384)


class AuthzenSubject(_Open):
    """`type` is `agent`; `id` the agent's SPIFFE ID, client id or agent id; `properties.credential` its token."""

    type: str = Field(min_length=1, max_length=255)
    id: str = Field(min_length=1, max_length=2048)
    properties: dict[str, Any] = Field(default_factory=dict)


class AuthzenAction(_Open):
    """`name` is the tool's action name."""

    name: str = Field(min_length=1, max_length=255)
    properties: dict[str, Any] = Field(default_factory=dict)


class AuthzenResource(_Open):
    """`type` is the tool name, `id` the resource id; `properties` may add sensitivity, environment, audience."""

    type: str = Field(min_length=1, max_length=255)
    id: str = Field(min_length=1, max_length=2048)
    properties: dict[str, Any] = Field(default_factory=dict)


class AuthzenEvaluationIn(_Open):
    """An Access Evaluation request (AuthZEN 1.0 §6); `context` may carry the request facts policies use."""

    subject: AuthzenSubject
    action: AuthzenAction
    resource: AuthzenResource
    context: dict[str, Any] = Field(default_factory=dict)


class AuthzenEvaluation(_Open):
    """One item of a batch: each member given replaces the request-level default whole."""

    subject: AuthzenSubject | None = None
    action: AuthzenAction | None = None
    resource: AuthzenResource | None = None
    context: dict[str, Any] | None = None


class AuthzenOptions(_Open):
    """How a batch runs: every item, or stop at the first deny or the first permit."""

    evaluations_semantic: Literal["execute_all", "deny_on_first_deny", "permit_on_first_permit"] = "execute_all"


class AuthzenEvaluationsIn(_Open):
    """An Access Evaluations request (AuthZEN 1.0 §7): request-level defaults and the items."""

    subject: AuthzenSubject | None = None
    action: AuthzenAction | None = None
    resource: AuthzenResource | None = None
    context: dict[str, Any] | None = None
    evaluations: list[AuthzenEvaluation] = Field(default_factory=list, max_length=100)
    options: AuthzenOptions = Field(default_factory=AuthzenOptions)


class AuthzenEvaluationOut(BaseModel):
    """`decision` is true only for allow; `context` says why (our effect, reasons and decision id)."""

    decision: bool
    context: dict[str, Any] = Field(default_factory=dict)


class AuthzenEvaluationsOut(BaseModel):
    """The answers in request order (fewer when a semantic stopped early)."""

    evaluations: list[AuthzenEvaluationOut]


class AuthzenConfiguration(BaseModel):
    """PDP metadata (AuthZEN 1.0 §9) at `/.well-known/authzen-configuration`."""

    policy_decision_point: str
    access_evaluation_endpoint: str
    access_evaluations_endpoint: str
