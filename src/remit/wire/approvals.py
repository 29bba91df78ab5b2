"""Approval, elevation, break-glass and operator-account payloads of the v1 API (shared with the SDK)."""

from __future__ import annotations

import datetime as dt

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ApprovalAnswer",
    "ApprovalOut",
    "BreakGlassIn",
    "BreakGlassReview",
    "ElevationOut",
    "HistoryItem",
    "OperatorCreated",
    "OperatorDisableIn",
    "OperatorIn",
    "OperatorOut",
    "VoteOut",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)


class OperatorIn(_In):
    """A new operator account: a person, their roles, their approver groups, who they are."""

    name: str = Field(min_length=1, max_length=63, examples=["grace"])
    roles: list[str] = Field(min_length=1, max_length=4, examples=[["approver"]])
    groups: list[str] = Field(default_factory=list, max_length=32, examples=[["finance"]])
    email: str | None = Field(default=None, max_length=320)
    owner: str | None = Field(default=None, max_length=320, description="the registry owner (id or email) this is")


class OperatorOut(BaseModel):
    """An operator account (never its token)."""

    id: str
    name: str
    roles: list[str]
    groups: list[str]
    email: str | None = None
    owner_id: str | None = None
    active: bool
    created_at: dt.datetime
    created_by: str
    disabled_at: dt.datetime | None = None
    disabled_by: str | None = None
    disable_reason: str | None = None


class OperatorCreated(BaseModel):
    """The account and its API token: shown once, stored only as a SHA-256 digest."""

    operator: OperatorOut
    token: str


class OperatorDisableIn(_In):
    """Why the account is disabled."""

    reason: str = Field(min_length=1, max_length=2000)


class ApprovalAnswer(_In):
    """An approver's answer; a denial needs a reason."""

    reason: str = Field(default="", max_length=2000)


class VoteOut(BaseModel):
    """One approver's answer."""

    approver: str
    approve: bool
    reason: str
    at: dt.datetime


class ElevationOut(BaseModel):
    """What an approval granted: exactly one call, for a few uses or a short window, never past the task."""

    id: str
    task_id: str
    authorization_details: list[dict[str, Any]]
    uses_left: int | None = Field(description="null: any number of uses until expires_at")
    used: int
    granted_at: dt.datetime
    expires_at: dt.datetime
    break_glass: bool = False


class HistoryItem(BaseModel):
    """One event of the task so far, for the approver."""

    sequence: int
    type: str
    occurred_at: dt.datetime
    actor_kind: str
    actor_id: str
    subject_id: str


class ApprovalOut(BaseModel):
    """An approval request (or break-glass grant) and what the approver is asked to allow."""

    id: str
    kind: str
    state: str
    task_id: str
    agent_id: str
    owner_id: str
    function_id: str
    principal: str | None = None
    objective: str
    tool: str
    action: str
    resource: str
    risk_class: str
    sensitivity: str | None = None
    environment: str | None = None
    context: dict[str, str | int | bool] = Field(default_factory=dict)
    authorization_details: list[dict[str, Any]]
    uses: int | None = None
    ttl_seconds: int
    approvers: list[str]
    required: int
    approvals: int
    votes: list[VoteOut] = Field(default_factory=list)
    created_at: dt.datetime
    expires_at: dt.datetime
    decided_at: dt.datetime | None = None
    reason: str | None = None
    decision_id: str | None = None
    requested_by: str
    elevation: ElevationOut | None = None
    justification: str | None = None
    review_state: str | None = None
    reviewed_by: str | None = None
    reviewed_at: dt.datetime | None = None
    review_notes: str | None = None
    history: list[HistoryItem] | None = Field(default=None, description="the task's events so far (approvers only)")


class BreakGlassIn(_In):
    """Self-grant a short elevation for one call of a running task, with a written justification."""

    task_id: str = Field(min_length=5, max_length=40)
    tool: str = Field(min_length=1, max_length=63)
    action: str = Field(min_length=1, max_length=63)
    resource: str = Field(min_length=1, max_length=512)
    justification: str = Field(min_length=20, max_length=2000)
    ttl_seconds: int | None = Field(default=None, ge=30, le=900)
    context: dict[str, str | int | bool] = Field(
        default_factory=dict,
        max_length=32,
        description="the request facts (amount, currency, record_count...) the grant covers exactly; none by default",
    )


class BreakGlassReview(_In):
    """The auditor's findings on a break-glass use."""

    notes: str = Field(min_length=1, max_length=2000)
