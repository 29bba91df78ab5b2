"""Approval requests, the elevations they grant, operator accounts and their roles."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from remit.core.registry.models import RiskClass, Sensitivity
from remit.errors import InvalidRequest

__all__ = [
    "MAX_REASON",
    "OWNER_APPROVES",
    "ApprovalKind",
    "ApprovalRequest",
    "ApprovalState",
    "Elevation",
    "OperatorAccount",
    "OperatorRole",
    "ReviewState",
    "Vote",
    "parse_group",
    "parse_operator_name",
    "parse_reason",
    "token_digest",
]

MAX_REASON: Final = 2000
# In an approver list, `owner` names the task's accountable owner rather than a group.
OWNER_APPROVES: Final = "owner"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,62}$")


class OperatorRole(StrEnum):
    """What a person may do on the control plane; an account holds one or more roles."""

    ADMIN = "admin"  # the registry, policies, tasks, operator accounts
    APPROVER = "approver"  # approve or deny approval requests of their groups
    AUDITOR = "auditor"  # read approvals and audit, close break-glass reviews
    BREAK_GLASS = "break-glass"  # self-grant a short elevation in an emergency, loudly


class ApprovalKind(StrEnum):
    """An approval request asked for by a decision, or a break-glass self-grant."""

    APPROVAL = "approval"
    BREAK_GLASS = "break_glass"


class ApprovalState(StrEnum):
    """pending → approved | denied | expired; every end is final."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"


class ReviewState(StrEnum):
    """A break-glass use stays `open` until an auditor closes its review."""

    OPEN = "open"
    CLOSED = "closed"


def parse_operator_name(raw: str, *, field: str = "name") -> str:
    name = raw.strip().lower()
    if not _NAME.match(name):
        raise InvalidRequest("a name is 1-63 of a-z, 0-9, '.', '_', '@', '-'", field=field)
    return name


def parse_group(raw: str, *, field: str = "groups") -> str:
    return parse_operator_name(raw, field=field)


def parse_reason(raw: str, *, field: str = "reason", required: bool = False, minimum: int = 1) -> str:
    text = " ".join(raw.split())
    if len(text) > MAX_REASON:
        raise InvalidRequest(f"at most {MAX_REASON} characters", field=field)
    if required and len(text) < minimum:
        raise InvalidRequest(f"a written {field} of at least {minimum} characters is required", field=field)
    return text


def token_digest(token: str) -> str:
    """The SHA-256 of an operator token, hex: the only form in which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorAccount:
    """A person with control-plane access: roles, approver groups, and the digest of their API token.

    `email` and `owner_id` say who the person is, so that nobody approves a task run on their own
    behalf and a task's owner can approve as `owner`.
    """

    id: str
    name: str
    roles: frozenset[OperatorRole]
    groups: tuple[str, ...] = ()
    email: str | None = None
    owner_id: str | None = None
    token_sha256: str = field(default="", repr=False)
    created_at: dt.datetime
    created_by: str
    disabled_at: dt.datetime | None = None
    disabled_by: str | None = None
    disable_reason: str | None = None

    @property
    def is_active(self) -> bool:
        return self.disabled_at is None

    def has(self, role: OperatorRole) -> bool:
        return self.is_active and role in self.roles

    def is_person(self, who: str | None) -> bool:
        """Whether `who` (a task's principal) names this person: account name, email or owner id."""
        if not who:
            return False
        key = who.strip().lower()
        return key in {self.name, (self.email or "").lower(), (self.owner_id or "").lower()} - {""}


@dataclass(frozen=True, slots=True, kw_only=True)
class Vote:
    """One approver's answer to a request."""

    approver: str
    approve: bool
    reason: str
    at: dt.datetime

    def as_json(self) -> dict[str, Any]:
        return {"approver": self.approver, "approve": self.approve, "reason": self.reason, "at": self.at.isoformat()}


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalRequest:
    """A request for a human to approve one exact call (task, tool, action, resource) within a window.

    What the approver sees: the agent, the owner, the objective, the action and resource with its
    sensitivity and environment. `uses` and `ttl` are the elevation's window once approved
    (`uses` None: any number of uses within `ttl`). `approvers` lists who may approve (`owner` or
    group names) and `required` how many distinct approvers it takes.
    """

    id: str
    kind: ApprovalKind
    task_id: str
    agent_id: str
    owner_id: str
    function_id: str
    principal: str | None
    objective: str
    tool: str
    action: str
    resource: str
    risk_class: RiskClass
    sensitivity: Sensitivity | None
    environment: str | None
    context: dict[str, str | int | bool]
    uses: int | None
    ttl: dt.timedelta
    approvers: tuple[str, ...]
    required: int
    state: ApprovalState
    created_at: dt.datetime
    expires_at: dt.datetime
    requested_by: str
    decision_id: str | None = None
    votes: tuple[Vote, ...] = ()
    decided_at: dt.datetime | None = None
    reason: str | None = None
    elevation_id: str | None = None
    justification: str | None = None
    review_state: ReviewState | None = None
    reviewed_by: str | None = None
    reviewed_at: dt.datetime | None = None
    review_notes: str | None = None

    @property
    def authorization_details(self) -> list[dict[str, Any]]:
        """Exactly what an approval grants, as one RFC 9396 detail."""
        return [{"type": "remit_tool", "tool": self.tool, "actions": [self.action], "resources": [self.resource]}]

    @property
    def pending_key(self) -> str:
        """Identical requests share this key: the same task, call, context and window."""
        parts = (
            self.task_id,
            self.tool,
            self.action,
            self.resource,
            repr(sorted(self.context.items())),
            str(self.uses),
            str(int(self.ttl.total_seconds())),
        )
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    @property
    def approvals(self) -> tuple[Vote, ...]:
        return tuple(v for v in self.votes if v.approve)

    def is_overdue(self, now: dt.datetime) -> bool:
        return self.state is ApprovalState.PENDING and now >= self.expires_at


@dataclass(frozen=True, slots=True, kw_only=True)
class Elevation:
    """A live just-in-time permission for exactly one call (task, tool, action, resource) in a window.

    `uses_left` None means any number of uses until `expires_at`; otherwise it counts down to zero.
    It dies with its task: the decision path refuses any call of a task that is not running.
    """

    id: str
    approval_id: str
    task_id: str
    agent_id: str
    owner_id: str
    function_id: str
    tool: str
    action: str
    resource: str
    uses_left: int | None
    used: int
    granted_at: dt.datetime
    expires_at: dt.datetime
    granted_by: tuple[str, ...]
    break_glass: bool = False

    def is_live(self, now: dt.datetime) -> bool:
        return now < self.expires_at and (self.uses_left is None or self.uses_left > 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task_id": self.task_id,
            "authorization_details": [
                {"type": "remit_tool", "tool": self.tool, "actions": [self.action], "resources": [self.resource]}
            ],
            "uses_left": self.uses_left,
            "used": self.used,
            "granted_at": self.granted_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "break_glass": self.break_glass,
        }
