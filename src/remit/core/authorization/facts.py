"""The registry and task facts a decision needs, kept in memory so the common case reads no database row.

Under `without_waiting()` (a decision on the event loop) a miss raises `WouldWait` instead of reading,
and the caller decides again in a worker thread.

Entries live for a short time (`ttl`, 2 s by default) and are dropped at once when this process
publishes a registry event. A change made on another replica therefore takes effect here within
`ttl`; the changes that must act at once everywhere (suspension, offboarding, workflow retired,
task ended or objective changed) also revoke credentials, and revocations reach every replica's
index before any credential verifies (see `credentials.verification`).
"""

from __future__ import annotations

import datetime as dt
import threading
import time

from collections.abc import Callable, Sequence
from typing import Final, TypeVar

from remit.core.attestation.waiting import WouldWait, waiting_allowed
from remit.core.events import DomainEvent, InProcessEventBus
from remit.core.registry.models import Agent, BusinessFunction, Grant, Owner, Tool, WorkflowVersion
from remit.core.tasks.models import Task
from remit.core.tasks.ports import TaskTransaction, TaskUnitOfWork

__all__ = ["CachedFacts"]

T = TypeVar("T")

_MAX_ENTRIES: Final = 100_000
_MISSING: Final = object()


class CachedFacts:
    """Reads agents, owners, functions, tools, workflows, grants and tasks through a short-lived cache."""

    def __init__(
        self,
        uow: TaskUnitOfWork,
        *,
        ttl: dt.timedelta = dt.timedelta(seconds=2),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uow = uow
        # Freshness is measured on the monotonic clock: it is about the cache, not about domain time.
        self._monotonic = monotonic
        self._ttl = ttl.total_seconds()
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[float, object]] = {}
        self._generation = 0  # moves on every clear()

    def subscribe(self, bus: InProcessEventBus) -> None:
        """Drop everything on any domain event of this process: they are rare, and then nothing is stale."""
        bus.subscribe(DomainEvent, lambda _event: self.clear())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._generation += 1

    def forget_task(self, task_id: str) -> None:
        with self._lock:
            self._entries.pop(("task", task_id), None)

    def _get(self, kind: str, key: str, load: Callable[[TaskTransaction], T]) -> T:
        now = self._monotonic()
        entry = self._entries.get((kind, key))
        if entry is not None and now < entry[0]:
            return entry[1]  # type: ignore[return-value]  # stored by this method with the same loader type
        if not waiting_allowed():
            raise WouldWait  # on an event loop: the caller decides again in a worker thread
        generation = self._generation
        with self._uow() as tx:
            value = load(tx)
        with self._lock:
            # A clear() during the read means the value may predate the change that cleared: use it
            # for this call, but do not keep it.
            if generation == self._generation:
                if len(self._entries) >= _MAX_ENTRIES:
                    self._entries.clear()
                self._entries[(kind, key)] = (now + self._ttl, value)
        return value

    def agent(self, agent_id: str) -> Agent | None:
        return self._get("agent", agent_id, lambda tx: tx.registry.get_agent(agent_id))

    def owner(self, owner_id: str) -> Owner | None:
        return self._get("owner", owner_id, lambda tx: tx.registry.get_owner(owner_id))

    def function(self, function_id: str) -> BusinessFunction | None:
        return self._get("function", function_id, lambda tx: tx.registry.get_function(function_id))

    def tool(self, name: str) -> Tool | None:
        return self._get("tool", name, lambda tx: tx.registry.get_tool_by_name(name))

    def workflow(self, workflow_id: str) -> WorkflowVersion | None:
        return self._get("workflow", workflow_id, lambda tx: tx.registry.get_workflow(workflow_id))

    def grants(self, agent_id: str) -> Sequence[Grant]:
        return self._get("grants", agent_id, lambda tx: tuple(tx.registry.grants_of_agent(agent_id)))

    def task(self, task_id: str, *, epoch: int) -> Task | None:
        """The task, re-read when the caller has seen a newer epoch than the cached one."""
        task = self._get("task", task_id, lambda tx: tx.tasks.get_task(task_id))
        if task is not None and task.epoch < epoch:
            self.forget_task(task_id)
            task = self._get("task", task_id, lambda tx: tx.tasks.get_task(task_id))
        return task
