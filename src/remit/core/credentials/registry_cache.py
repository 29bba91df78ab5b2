"""The registry rows issuance reads, kept between requests, and the reads of one issuance through them.

Issuance reads the agent (by its workload binding), its owner and business function, the workflow
version and the tools it names: the same few rows for every credential of an agent. They are kept
here, keyed as issuance looks them up, so the common issuance reads nothing from the store.

Tasks are kept too, up to `MAX_TASKS`: each one this process starts or
binds once its write commits, and each one a decision reads from the store. A re-issue, a delegation
and an `act` chain then read nothing from the store either.

A kept row may be stale. That is made safe where it matters, in the write: each issuance notes the
revision of every row it decided on (`IssuanceReads.depends_on`), and the batch that writes it
re-reads those revisions inside its transaction, under the lock registry writes take (see
`IssuanceStore.hold_registry`). A unit whose rows changed is not written: the issuance is decided
again, on the store's rows, inside the transaction that writes it, and each row that decision reads
replaces the kept one (a row no longer found is forgotten). So a change (an agent suspended, an owner
offboarded, a workflow retired; a task ended, its objective changed or its DPoP binding set, each of
which writes a new task revision), once committed by this or any other replica, refuses every
issuance written after it. The other way round, a refusal decided on kept rows is decided again the
same way before it is returned, so a change that re-allows (an agent reactivated elsewhere) is
honoured at once too. Nothing else is dropped, so one agent's refused or stale issuances never empty
what other issuances decide on; each kind keeps at most `MAX_ENTRIES` rows, the oldest dropped first.
"""

from __future__ import annotations

import threading

from collections import OrderedDict
from contextlib import AbstractContextManager, ExitStack
from typing import TYPE_CHECKING, Final, Protocol, Self, TypeVar

from remit.core.attestation.waiting import WouldWait, waiting_allowed
from remit.core.registry.models import Agent, BusinessFunction, Owner, Tool, WorkflowVersion
from remit.core.tasks.models import Task

if TYPE_CHECKING:
    from collections.abc import Callable

    from remit.core.credentials.tokens import CredentialsTransaction

__all__ = ["IssuanceReads", "Kept", "RegistryCache"]

# Rows kept per kind, the oldest dropped first beyond it (a registry this large still fits easily).
MAX_ENTRIES: Final = 10_000
# Tasks kept: tasks come and go, so the recent ones are those re-issued for.
MAX_TASKS: Final = 4_096

K = TypeVar("K")
V = TypeVar("V", Agent, Owner, BusinessFunction, WorkflowVersion, Tool, Task)


class _Revisioned(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def revision(self) -> int: ...


class Kept(OrderedDict[K, V]):
    """Rows of one kind by one key, the oldest dropped first beyond `limit`; reads are single dict operations."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit
        self._lock = threading.Lock()  # eviction pops the oldest: two at once must not pop an empty map

    def keep(self, key: K, value: V) -> None:
        """Keep `value` as the newest (a fresher copy replaces an older one)."""
        with self._lock:
            self.pop(key, None)
            while len(self) >= self._limit:
                self.popitem(last=False)
            self[key] = value

    def forget(self, key: K) -> None:
        with self._lock:
            self.pop(key, None)


class RegistryCache:
    """Registry rows and tasks by the keys issuance uses; thread-safe."""

    def __init__(self, *, max_entries: int = MAX_ENTRIES, max_tasks: int = MAX_TASKS) -> None:
        self.agents_by_binding: Kept[str, Agent] = Kept(max_entries)
        self.agents: Kept[str, Agent] = Kept(max_entries)
        self.owners: Kept[str, Owner] = Kept(max_entries)
        self.functions: Kept[str, BusinessFunction] = Kept(max_entries)
        self.workflows_by_ref: Kept[tuple[str, int], WorkflowVersion] = Kept(max_entries)
        self.workflows: Kept[str, WorkflowVersion] = Kept(max_entries)
        self.tools_by_name: Kept[str, Tool] = Kept(max_entries)
        self.tasks: Kept[str, Task] = Kept(max_tasks)

    def __len__(self) -> int:
        return (
            len(self.agents_by_binding)
            + len(self.agents)
            + len(self.owners)
            + len(self.functions)
            + len(self.workflows_by_ref)
            + len(self.workflows)
            + len(self.tools_by_name)
            + len(self.tasks)
        )


class IssuanceReads:
    """The reads of one issuance: from the cache when `use_cache`, else from the store; each notes its revision.

    The store is opened (one read transaction) only on the first miss. Use as a context manager.
    """

    def __init__(
        self,
        cache: RegistryCache,
        uow: Callable[[], AbstractContextManager[CredentialsTransaction]],
        *,
        use_cache: bool = True,
    ) -> None:
        self._cache = cache
        self._uow = uow
        self._use_cache = use_cache
        self._stack = ExitStack()
        self._tx: CredentialsTransaction | None = None
        self.depends_on: dict[tuple[str, str], int] = {}
        self.used_cache = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _store(self) -> CredentialsTransaction:
        if self._tx is None:
            if not waiting_allowed():
                # On an event loop a store read would stall every request the loop serves: the caller
                # decides again in a worker thread.
                raise WouldWait
            self._tx = self._stack.enter_context(self._uow())
        return self._tx

    def _note(self, kind: str, found: _Revisioned | None) -> None:
        if found is not None:
            self.depends_on[(kind, found.id)] = found.revision

    def _through(self, kept: Kept[K, V], key: K, load: Callable[[CredentialsTransaction], V | None]) -> V | None:
        found = kept.get(key) if self._use_cache else None
        if found is not None:
            self.used_cache = True
            return found
        found = load(self._store())
        if found is not None:
            kept.keep(key, found)
        else:
            kept.forget(key)  # gone from the store: a kept copy would only send decisions round again
        return found

    @staticmethod
    def _also_by_id(kept: Kept[str, V], found: V) -> None:
        """Keep a row found by another key under its id too: a re-issue or an `act` chain looks it up by id."""
        if kept.get(found.id) is not found:  # absent, or an older copy than the one just read
            kept.keep(found.id, found)

    def agent_by_binding(self, key: str) -> Agent | None:
        agent = self._through(self._cache.agents_by_binding, key, lambda tx: tx.registry.find_agent_by_binding(key))
        self._note("agent", agent)
        if agent is not None:
            self._also_by_id(self._cache.agents, agent)
        return agent

    def agent(self, agent_id: str) -> Agent | None:
        agent = self._through(self._cache.agents, agent_id, lambda tx: tx.registry.get_agent(agent_id))
        self._note("agent", agent)
        return agent

    def owner(self, owner_id: str) -> Owner | None:
        owner = self._through(self._cache.owners, owner_id, lambda tx: tx.registry.get_owner(owner_id))
        self._note("owner", owner)
        return owner

    def function(self, function_id: str) -> BusinessFunction | None:
        function = self._through(self._cache.functions, function_id, lambda tx: tx.registry.get_function(function_id))
        self._note("function", function)
        return function

    def workflow_version(self, name: str, version: int) -> WorkflowVersion | None:
        workflow = self._through(
            self._cache.workflows_by_ref, (name, version), lambda tx: tx.registry.get_workflow_version(name, version)
        )
        self._note("workflow", workflow)
        if workflow is not None:
            self._also_by_id(self._cache.workflows, workflow)
        return workflow

    def workflow(self, workflow_id: str) -> WorkflowVersion | None:
        workflow = self._through(self._cache.workflows, workflow_id, lambda tx: tx.registry.get_workflow(workflow_id))
        self._note("workflow", workflow)
        return workflow

    def tool_by_name(self, name: str) -> Tool | None:
        tool = self._through(self._cache.tools_by_name, name, lambda tx: tx.registry.get_tool_by_name(name))
        self._note("tool", tool)
        return tool

    def task(self, task_id: str) -> Task | None:
        """A task with its DPoP binding (ADR 0016), kept like a registry row: every change writes a revision."""
        task = self._through(self._cache.tasks, task_id, lambda tx: tx.tasks.get_task(task_id))
        self._note("task", task)
        return task
