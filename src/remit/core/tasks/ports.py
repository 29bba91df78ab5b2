"""Ports the task lifecycle needs: the task store, the revocation log, and the transaction holding both."""

from __future__ import annotations

import datetime as dt

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from remit.core.audit.ports import AuditStore
from remit.core.registry.models import Page
from remit.core.registry.ports import RegistryStore
from remit.core.tasks.models import Task, TaskParties, TaskState
from remit.core.tasks.revocations import RevocationEntry, RevocationKind

__all__ = ["RevocationLog", "TaskStore", "TaskTransaction", "TaskUnitOfWork"]


class TaskStore(Protocol):
    """Persistence of tasks; `update_task` raises Conflict unless the stored revision is `expected_revision`."""

    def add_task(self, task: Task) -> None: ...
    def update_task(self, task: Task, *, expected_revision: int) -> None: ...
    def get_task(self, task_id: str) -> Task | None: ...

    def lock_task(self, task_id: str) -> Task | None:
        """`get_task` with the row held until commit, so no other write to it (a binding, an end) lands in between."""
        ...

    def running_task_parties(self) -> Sequence[TaskParties]: ...
    def running_task_ids(self, parties: TaskParties) -> Sequence[str]: ...
    def running_tasks_of_agent(self, agent_id: str) -> Sequence[Task]: ...
    def running_tasks_of_workflow(self, workflow_id: str) -> Sequence[Task]: ...
    def running_descendants(self, task: Task) -> Sequence[Task]: ...
    def running_past_deadline(self, now: dt.datetime, *, limit: int) -> Sequence[Task]: ...
    def list_tasks(
        self, *, limit: int, after: str | None, agent_id: str | None = None, state: TaskState | None = None
    ) -> Page[Task]: ...


class RevocationLog(Protocol):
    """The append-only, sequenced revocation log every replica's index follows."""

    def append(self, kind: RevocationKind, subject: str, *, reason: str, at: dt.datetime, epoch: int = 0) -> int: ...
    def since(self, seq: int, *, limit: int = 10_000) -> Sequence[RevocationEntry]: ...


class TaskTransaction(Protocol):
    """What one task use case reads and writes atomically."""

    @property
    def registry(self) -> RegistryStore: ...

    @property
    def tasks(self) -> TaskStore: ...

    @property
    def revocations(self) -> RevocationLog: ...

    @property
    def audit(self) -> AuditStore: ...


class TaskUnitOfWork(Protocol):
    """Opens a task transaction: committed on normal exit, rolled back on an exception."""

    def __call__(self) -> AbstractContextManager[TaskTransaction]: ...
