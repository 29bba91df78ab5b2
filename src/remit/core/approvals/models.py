"""Approval requests, the elevations they grant, operator accounts and their roles."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from remit.core.registry.models import RiskClass, Sensitivity
from remit.errors import InvalidRequest

if TYPE_CHECKING:
    from collections.abc import Mapping

    from remit.core.registry.models import Owner

__all__ = [
    "BREAK_GLASS_GROUP",
    "MAX_REASON",
    "OWNER_APPROVES",
    "RESERVED_GROUPS",
    "ApprovalKind",
    "ApprovalRequest",
    "ApprovalState",
    "Elevation",
    "OperatorAccount",
    "OperatorRole",
    "ReviewState",
    "Vote",
    "context_digest",
    "normalise_identity",
    "parse_group",
    "parse_operator_name",
    "parse_reason",
    "token_digest",
]

MAX_REASON: Final = 2000
# In an approver list, `owner` names the task's accountable owner rather than a group.
OWNER_APPROVES: Final = "owner"
# A break-glass grant lists this as its "approvers": never a group anyone may be in.
BREAK_GLASS_GROUP: Final = "break-glass"
RESERVED_GROUPS: Final = frozenset({OWNER_APPROVES, BREAK_GLASS_GROUP})
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
    """An approver group's name; `owner` and `break-glass` are reserved (they are never groups)."""
    group = parse_operator_name(raw, field=field)
    if group in RESERVED_GROUPS:
        raise InvalidRequest(f"{group!r} is reserved and is not a group name", field=field)
    return group


def normalise_identity(raw: str | None) -> str:
    """One person identifier, compared case-insensitively: trimmed, lower case, without a `mailto:` prefix."""
    text = (raw or "").strip().lower()
    if text.startswith("mailto:"):
        text = text.removeprefix("mailto:").strip()
    return text


def context_digest(context: Mapping[str, str | int | bool]) -> str:
    """SHA-256 (hex) of the request facts as canonical JSON (sorted keys): what an approval is bound to."""
    canonical = json.dumps(dict(context), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


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

    def identities(self, owner: Owner | None = None) -> frozenset[str]:
        """Every normalised identifier of this person.

        The account name, email and owner id, and, given the linked owner, its id, email and human
        sign-in identities (`oidc:<issuer>#<subject>` and the bare subject).
        """
        found = {self.name, self.email, self.owner_id}
        if owner is not None:
            found |= {owner.id, owner.email}
            for human in owner.human_identities:
                found |= {str(human), human.subject}
        return frozenset(normalise_identity(i) for i in found if i) - {""}

    def is_person(self, who: str | None, owner: Owner | None = None) -> bool:
        """Whether `who` (a task's principal) names this person (see `identities`), after normalisation."""
        key = normalise_identity(who)
        return bool(key) and key in self.identities(owner)

    def person_key(self, owner: Owner | None = None) -> str:
        """Who this account is, as a person: the linked owner, else the email, else the account name.

        Two accounts of one person have the same key, so they count as one approver.
        """
        owner_id = self.owner_id or (owner.id if owner is not None else None)
        if owner_id:
            return f"owner:{owner_id}"
        if self.email:
            return f"email:{normalise_identity(self.email)}"
        return f"account:{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Vote:
    """One approver's answer to a request."""

    approver: str
    approve: bool
    reason: str
    at: dt.datetime
    person: str = ""  # the approver's person key when they answered (see `OperatorAccount.person_key`)

    def as_json(self) -> dict[str, Any]:
        return {
            "approver": self.approver,
            "approve": self.approve,
            "reason": self.reason,
            "at": self.at.isoformat(),
            "person": self.person,
        }


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
    epoch: int = 0
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
    def context_sha256(self) -> str:
        """The digest of the request facts this approval is bound to (see `context_digest`)."""
        return context_digest(self.context)

    @property
    def pending_key(self) -> str:
        """Identical requests share this key: the same task at the same epoch, call, context and window."""
        parts = (
            self.task_id,
            str(self.epoch),
            self.tool,
            self.action,
            self.resource,
            self.context_sha256,
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

    Bound to the task's epoch and to the digest of the approved request facts (`context_sha256`):
    a call at another epoch or with other facts (another amount, say) is not covered.
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
    epoch: int = 0
    context_sha256: str = ""

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
