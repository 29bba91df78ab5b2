"""Audit events: the versioned record every feature writes through the audit port."""

from __future__ import annotations

import datetime as dt

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

__all__ = ["ActorKind", "AuditActor", "AuditEvent"]


class ActorKind(StrEnum):
    """What kind of party caused an event."""

    AGENT = "agent"
    OPERATOR = "operator"
    APPROVER = "approver"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class AuditActor:
    """Who caused the event."""

    kind: ActorKind
    id: str

    @classmethod
    def system(cls) -> AuditActor:
        return cls(ActorKind.SYSTEM, "remit")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """One audit record.

    Schema rule: add fields at the end with defaults; never rename, reorder or reuse. An
    incompatible change is a new schema number, and readers accept every older one. `data` never
    holds a token, key or secret: credentials appear only as an HMAC of their `jti`.
    """

    SCHEMA: ClassVar[int] = 1
    id: str
    type: str  # "subject.verb_past", e.g. "agent.registered", "credential.revoked"
    occurred_at: dt.datetime
    actor: AuditActor
    subject_kind: str
    subject_id: str
    data: dict[str, Any] = field(default_factory=dict)
    task_id: str | None = None
    agent_id: str | None = None
    owner_id: str | None = None
    function_id: str | None = None
    correlation_id: str | None = None
