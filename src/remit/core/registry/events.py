"""Domain events the registry publishes; later features (revocation) subscribe to them."""

from __future__ import annotations

from dataclasses import dataclass

from remit.core.events import DomainEvent

__all__ = ["AgentStatusChanged", "OwnerOffboarded", "WorkflowVersionEnded"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnerOffboarded(DomainEvent):
    """An owner left; their agents were suspended and everything they hold must be revoked."""

    owner_id: str
    suspended_agent_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStatusChanged(DomainEvent):
    """An agent was suspended, retired or reactivated."""

    agent_id: str
    status: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowVersionEnded(DomainEvent):
    """A workflow version was superseded by a newer approval or retired: its tasks must end."""

    workflow_id: str
    ref: str
    state: str
