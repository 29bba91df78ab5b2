"""Audit events: the versioned record every feature writes through the audit port."""

from __future__ import annotations

import datetime as dt

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple

__all__ = [
    "GENESIS_HASH",
    "ActorKind",
    "AuditActor",
    "AuditEvent",
    "Checkpoint",
    "Fault",
    "FaultKind",
    "SealedRecord",
    "StoredRecord",
    "UnreadableRecord",
    "VerificationReport",
]


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


# ------------------------------------------------------------------ the chain (see chain.py)

# The previous hash of record 1: 32 zero bytes, hex-encoded. Fixed forever: changing it would
# re-hash every chain ever written.
GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class SealedRecord:
    """An audit event at its place in the chain: `hash = SHA-256(prev_hash || JCS(record))`."""

    sequence: int
    prev_hash: str
    hash: str
    event: AuditEvent
    schema: int = AuditEvent.SCHEMA


class StoredRecord(NamedTuple):
    """A chain row as stored: the exact JCS bytes its hash covers, and the columns indexed beside them.

    `document` is the source of truth (events are decoded from it); `id`, `type`, `task_id` and
    `agent_id` are copies kept for lookups, which verification checks against the document. A tuple,
    not a dataclass: verification reads hundreds of thousands of them per second straight from the
    driver's rows.
    """

    sequence: int
    prev_hash: str
    hash: str
    document: str  # JCS(record document) as UTF-8 text: hash = SHA-256(prev_hash || document)
    id: str
    type: str
    task_id: str | None
    agent_id: str | None


@dataclass(frozen=True, slots=True)
class UnreadableRecord:
    """A stored row at `sequence` that could not even be decoded: it was altered."""

    sequence: int
    reason: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement "the chain had `head_hash` at `sequence`", exportable for anchoring elsewhere."""

    sequence: int
    head_hash: str
    created_at: dt.datetime
    key_id: str
    signature: str
    algorithm: str = "Ed25519"


class FaultKind(StrEnum):
    """What verification found wrong, at the first place it went wrong."""

    ALTERED = "altered"  # the record's content no longer matches its seal
    MISSING = "missing"  # a sequence number is absent: a record was removed
    REORDERED = "reordered"  # the record does not belong at this position (moved, replaced, or its link edited)
    RESEALED = "resealed"  # a record was rewritten and re-hashed: the next one no longer links to it
    TRUNCATED = "truncated"  # the log ends before a signed checkpoint
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"  # history under a signed checkpoint was rewritten
    CHECKPOINT_FORGED = "checkpoint_forged"  # a checkpoint's signature does not verify with the audit key


@dataclass(frozen=True, slots=True)
class Fault:
    """One verification failure, located at a sequence number."""

    kind: FaultKind
    sequence: int
    message: str


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """The outcome of verifying the chain: `ok`, or the first fault and every checkpoint fault found."""

    records_checked: int
    head_sequence: int
    head_hash: str
    checkpoints_checked: int
    latest_checkpoint: int | None
    faults: tuple[Fault, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.faults

    @property
    def first_fault(self) -> Fault | None:
        return min(self.faults, key=lambda f: f.sequence) if self.faults else None
