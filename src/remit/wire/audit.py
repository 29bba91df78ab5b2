"""Audit payloads of the v1 API: records, a task's trace, chain verification, checkpoints and OCSF pages."""

from __future__ import annotations

import datetime as dt

from typing import Any

from pydantic import BaseModel

from remit.wire.tasks import TaskOut

__all__ = [
    "AuditEventOut",
    "AuditEventsOut",
    "FaultOut",
    "OcsfEventsOut",
    "TraceOut",
    "UnreadableOut",
    "VerificationOut",
]


class AuditEventOut(BaseModel):
    """One audit record at its place in the chain; `data` never holds a token (a credential appears as `jti_hmac`)."""

    sequence: int
    id: str
    type: str
    occurred_at: dt.datetime
    actor_kind: str
    actor_id: str
    subject_kind: str
    subject_id: str
    data: dict[str, Any]
    task_id: str | None = None
    agent_id: str | None = None
    owner_id: str | None = None
    function_id: str | None = None
    correlation_id: str | None = None
    schema_version: int = 1
    prev_hash: str
    hash: str


class UnreadableOut(BaseModel):
    """A stored row that could not be decoded: it was altered (run verify)."""

    sequence: int
    reason: str


class AuditEventsOut(BaseModel):
    """A page of records in sequence order; pass `next_after` as `after_seq` to continue (null at the end)."""

    items: list[AuditEventOut]
    unreadable: list[UnreadableOut] = []
    next_after: int | None = None
    head_sequence: int


class OcsfEventsOut(BaseModel):
    """A page of records as OCSF 1.8.0 events; pass `next_after` as `after_seq` to continue (null at the end)."""

    items: list[dict[str, Any]]
    next_after: int | None = None


class TraceOut(BaseModel):
    """A task reconstructed from the audit log: the task, the tasks it covers and their events by sequence."""

    task: TaskOut
    task_ids: list[str]
    events: list[AuditEventOut]
    unreadable: list[UnreadableOut] = []


class FaultOut(BaseModel):
    """One verification fault, located at a sequence number."""

    kind: str
    sequence: int
    message: str


class VerificationOut(BaseModel):
    """The outcome of verifying the whole chain: `ok`, or the first fault and every fault found."""

    ok: bool
    records_checked: int
    head_sequence: int
    head_hash: str
    checkpoints_checked: int
    latest_checkpoint: int | None
    first_fault: FaultOut | None
    faults: list[FaultOut]
