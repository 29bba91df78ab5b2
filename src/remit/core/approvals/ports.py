"""Ports of the approvals feature: its storage, the operator accounts, and notifications."""

from __future__ import annotations

import datetime as dt

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from remit.core.approvals.models import ApprovalKind, ApprovalRequest, ApprovalState, Elevation, OperatorAccount
from remit.core.audit.ports import AuditStore
from remit.core.registry.models import Page
from remit.core.registry.ports import RegistryStore
from remit.core.tasks.ports import TaskStore

__all__ = [
    "ApprovalStore",
    "ApprovalTransaction",
    "ApprovalUnitOfWork",
    "Notifier",
    "OperatorStore",
]


class ApprovalStore(Protocol):
    """Approval requests and elevations, on the caller's transaction.

    `get(..., lock=True)` locks the row until the transaction ends (PostgreSQL `FOR UPDATE`; SQLite
    has one writer anyway). `add` raises `Conflict` when a pending request with the same pending key
    exists (the key is unique among pending requests). `find_elevation` matches the task at its
    epoch, the call and the digest of the request facts exactly. `consume_elevation` is one
    conditional UPDATE: it succeeds for exactly one caller per use, across replicas, and only while
    the task is still running at the elevation's epoch. `history_start` is the audit sequence after
    which the task's last `last` audit records lie (0 when it has fewer).
    """

    def add(self, request: ApprovalRequest) -> None: ...
    def get(self, approval_id: str, *, lock: bool = False) -> ApprovalRequest | None: ...
    def pending_with_key(self, key: str) -> ApprovalRequest | None: ...
    def update(self, request: ApprovalRequest) -> None: ...
    def list(
        self,
        *,
        limit: int,
        after: str | None,
        state: ApprovalState | None = None,
        kind: ApprovalKind | None = None,
        task_id: str | None = None,
        unreviewed: bool = False,
    ) -> Page[ApprovalRequest]: ...
    def overdue(self, now: dt.datetime, *, limit: int) -> Sequence[ApprovalRequest]: ...
    def add_elevation(self, elevation: Elevation) -> None: ...
    def get_elevation(self, elevation_id: str) -> Elevation | None: ...
    def find_elevation(  # noqa: PLR0913 - the exact call, each part named
        self,
        *,
        task_id: str,
        epoch: int,
        tool: str,
        action: str,
        resource: str,
        context_sha256: str,
        now: dt.datetime,
    ) -> Elevation | None: ...
    def consume_elevation(self, elevation_id: str, now: dt.datetime) -> bool: ...
    def count_pending(self, task_id: str) -> int: ...
    def history_start(self, task_id: str, *, last: int) -> int: ...


class OperatorStore(Protocol):
    """Operator accounts, on the caller's transaction.

    `add` raises `Conflict` on a duplicate name or token digest, or a second active account with the
    same email or linked owner. `active_for_person` lists the active accounts with one of these
    emails or owner ids.
    """

    def add(self, account: OperatorAccount) -> None: ...
    def update(self, account: OperatorAccount) -> None: ...
    def get_by_name(self, name: str) -> OperatorAccount | None: ...
    def get_by_digest(self, digest: str) -> OperatorAccount | None: ...
    def active_for_person(self, *, emails: Sequence[str], owner_ids: Sequence[str]) -> Sequence[OperatorAccount]: ...
    def list(self, *, limit: int, after: str | None) -> Page[OperatorAccount]: ...


class ApprovalTransaction(Protocol):
    """What one approvals use case reads and writes atomically."""

    @property
    def approvals(self) -> ApprovalStore: ...

    @property
    def operators(self) -> OperatorStore: ...

    @property
    def tasks(self) -> TaskStore: ...

    @property
    def registry(self) -> RegistryStore: ...

    @property
    def audit(self) -> AuditStore: ...


class ApprovalUnitOfWork(Protocol):
    """Opens an approvals transaction: committed on normal exit, rolled back on an exception."""

    def __call__(self) -> AbstractContextManager[ApprovalTransaction]: ...


class Notifier(Protocol):
    """Tells approver groups (webhooks) about an event; never blocks the caller and never raises."""

    def notify(
        self, *, groups: Sequence[str], event: str, payload: Mapping[str, Any], task_id: str | None = None
    ) -> None: ...


class NoNotifier:
    """No webhooks configured."""

    def notify(
        self,
        *,
        groups: Sequence[str],  # noqa: ARG002
        event: str,  # noqa: ARG002
        payload: Mapping[str, Any],  # noqa: ARG002
        task_id: str | None = None,  # noqa: ARG002
    ) -> None:
        return None
