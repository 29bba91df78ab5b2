"""The task lifecycle after issuance: complete, fail, cancel, change objective, expire, and mass revocation.

Every end of a task appends a `task_ended` revocation entry in the same transaction as the state
change, so a task can never be recorded as ended while its credentials still verify. Ending a task also
ends its running descendants (bounded by the delegation depth: no unbounded tree walk), and the entry
alone already kills their credentials because credentials carry their lineage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from remit.core.audit.models import AuditActor
from remit.core.clock import Clock
from remit.core.ids import IdFactory
from remit.core.registry.models import Page, WorkflowState
from remit.core.tasks.models import Task, TaskState, parse_objective
from remit.core.tasks.ports import TaskTransaction, TaskUnitOfWork
from remit.core.tasks.revocations import RevocationKind
from remit.errors import InvalidRequest, NotFound, TaskNotActive

__all__ = ["TaskService"]

_VERB = {
    TaskState.COMPLETED: "completed",
    TaskState.FAILED: "failed",
    TaskState.CANCELLED: "cancelled",
    TaskState.EXPIRED: "expired",
    TaskState.REVOKED: "revoked",
}


class TaskService:
    """Ends tasks and changes their context; every change is audited and revokes what it must."""

    def __init__(
        self,
        uow: TaskUnitOfWork,
        *,
        clock: Clock,
        ids: IdFactory,
        on_revocations: Callable[[], object] = lambda: None,
        reads: TaskUnitOfWork | None = None,
    ) -> None:
        self._uow = uow
        # Scans that usually find nothing (the sweeper's) read here: a read-only transaction where the
        # store has one, so they never hold the writer lock that issuance and revocation wait on.
        self._reads = reads or uow
        self._clock = clock
        self._ids = ids
        # Called after a commit that appended revocation entries, so this process's index
        # catches up at once instead of at the next poll.
        self._on_revocations = on_revocations

    # ------------------------------------------------------------ queries

    def get(self, task_id: str) -> Task:
        with self._uow() as tx:
            return _found(tx.tasks.get_task(task_id), task_id)

    def list(
        self, *, limit: int = 100, after: str | None = None, agent_id: str | None = None, state: TaskState | None = None
    ) -> Page[Task]:
        if not 1 <= limit <= 500:  # noqa: PLR2004 - the API's page bound
            raise InvalidRequest("limit must be between 1 and 500", field="limit")
        with self._uow() as tx:
            return tx.tasks.list_tasks(limit=limit, after=after, agent_id=agent_id, state=state)

    @staticmethod
    def _task(tx: TaskTransaction, task_id: str) -> Task:
        # Held to commit: a re-issue binding the task, or another end, waits instead of making this one conflict.
        return _found(tx.tasks.lock_task(task_id), task_id)

    # ------------------------------------------------------------ ending

    def _record(
        self, tx: TaskTransaction, event_type: str, actor: AuditActor, task: Task, data: dict[str, Any]
    ) -> None:
        tx.audit.append(
            task.audit_event(
                event_id=self._ids.new("event"),
                event_type=event_type,
                occurred_at=self._clock.now(),
                actor=actor,
                data=data,
            )
        )

    def _end(self, tx: TaskTransaction, task: Task, state: TaskState, *, reason: str, actor: AuditActor) -> Task:
        """End one running task and its running descendants, in the caller's transaction."""
        now = self._clock.now()
        ended = replace(task, state=state, ended_at=now, end_reason=reason, revision=task.revision + 1)
        tx.tasks.update_task(ended, expected_revision=task.revision)
        tx.revocations.append(RevocationKind.TASK_ENDED, task.id, reason=f"{state.value}:{reason}", at=now)
        self._record(tx, f"task.{_VERB[state]}", actor, task, {"reason": reason})
        for child in tx.tasks.running_descendants(task):
            revoked = replace(
                child,
                state=TaskState.REVOKED,
                ended_at=now,
                end_reason=f"ancestor_{state.value}",
                revision=child.revision + 1,
            )
            tx.tasks.update_task(revoked, expected_revision=child.revision)
            tx.revocations.append(RevocationKind.TASK_ENDED, child.id, reason=f"ancestor:{task.id}", at=now)
            self._record(tx, "task.revoked", actor, child, {"reason": "ancestor_ended", "ancestor": task.id})
        return ended

    def finish(
        self, task_id: str, state: TaskState, *, reason: str, actor: AuditActor, agent_id: str | None = None
    ) -> Task:
        """Complete, fail or cancel a running task; `agent_id` (when the agent itself calls) must own it."""
        if state not in {TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED}:
            raise InvalidRequest("a task is finished as completed, failed or cancelled", field="state")
        reason = parse_objective(reason) if reason else state.value
        with self._uow() as tx:
            task = self._task(tx, task_id)
            if agent_id is not None and task.agent_id != agent_id:
                # Another agent's task: as if it did not exist, so ids cannot be probed.
                msg = f"no task {task_id!r}"
                raise NotFound(msg)
            self._require_running(task)
            ended = self._end(tx, task, state, reason=reason, actor=actor)
        self._on_revocations()
        return ended

    def change_objective(self, task_id: str, objective: str, *, actor: AuditActor, agent_id: str | None = None) -> Task:
        """Change the declared objective: a context change, so every credential issued so far is revoked."""
        objective = parse_objective(objective)
        now = self._clock.now()
        with self._uow() as tx:
            task = self._task(tx, task_id)
            if agent_id is not None and task.agent_id != agent_id:
                msg = f"no task {task_id!r}"
                raise NotFound(msg)
            self._require_running(task)
            if objective == task.objective:
                return task
            changed = replace(task, objective=objective, epoch=task.epoch + 1, revision=task.revision + 1)
            tx.tasks.update_task(changed, expected_revision=task.revision)
            tx.revocations.append(
                RevocationKind.TASK_EPOCH, task.id, reason="objective_changed", at=now, epoch=changed.epoch
            )
            self._record(
                tx,
                "task.objective_changed",
                actor,
                task,
                {"before": task.objective, "after": objective, "epoch": changed.epoch},
            )
        self._on_revocations()
        return changed

    def _require_running(self, task: Task) -> None:
        state = task.effective_state(self._clock.now())
        if state is not TaskState.RUNNING:
            msg = f"task {task.id} is {state.value}"
            raise TaskNotActive(msg, details={"state": state.value})

    def revoke(self, task_id: str, *, reason: str, actor: AuditActor) -> Task | None:
        """End a running task as revoked (with its descendants); None when it had already ended."""
        with self._uow() as tx:
            task = self._task(tx, task_id)
            if task.effective_state(self._clock.now()) is not TaskState.RUNNING:
                return None
            ended = self._end(tx, task, TaskState.REVOKED, reason=reason, actor=actor)
        self._on_revocations()
        return ended

    def revoke_agent_tasks(self, agent_id: str, *, reason: str, actor: AuditActor) -> int:
        """The kill switch's second half: end every running task of an agent (and their descendants)."""
        with self._uow() as tx:
            tasks = tx.tasks.running_tasks_of_agent(agent_id)
            for task in tasks:
                current = tx.tasks.lock_task(task.id)
                if current is not None and current.is_running:
                    self._end(tx, current, TaskState.REVOKED, reason=reason, actor=actor)
        self._on_revocations()
        return len(tasks)

    def revoke_workflow_tasks(self, workflow_id: str, *, reason: str, actor: AuditActor) -> int:
        """End every running task of a workflow version that was superseded or retired."""
        with self._uow() as tx:
            tasks = tx.tasks.running_tasks_of_workflow(workflow_id)
            for task in tasks:
                current = tx.tasks.lock_task(task.id)
                if current is not None and current.is_running:
                    self._end(tx, current, TaskState.REVOKED, reason=reason, actor=actor)
        self._on_revocations()
        return len(tasks)

    def reconcile(self) -> int:
        """End running tasks whose agent, owner or workflow no longer allows them.

        Registry reactions run after the registry change commits; a crash in between would leave
        such tasks running. The sweeper runs this at start-up and periodically, closing that window.
        It decides on a read-only snapshot, once per distinct agent, owner and workflow of the running
        tasks, then ends only the tasks it found, deciding each again in the write transaction.
        """
        with self._reads() as tx:
            found = [
                task_id
                for parties in tx.tasks.running_task_parties()
                if _not_allowed(tx, parties.agent_id, parties.owner_id, parties.workflow_id) is not None
                for task_id in tx.tasks.running_task_ids(parties)
            ]
        if not found:
            return 0
        ended = 0
        with self._uow() as tx:
            for task_id in found:
                current = tx.tasks.lock_task(task_id)
                if current is None or not current.is_running:
                    continue
                reason = _not_allowed(tx, current.agent_id, current.owner_id, current.workflow_id)
                if reason is not None:
                    self._end(tx, current, TaskState.REVOKED, reason=reason, actor=AuditActor.system())
                    ended += 1
        if ended:
            self._on_revocations()
        return ended

    def expire_overdue(self, *, limit: int = 1000) -> int:
        """Record the end of running tasks past their deadline (their credentials already expired with them)."""
        now = self._clock.now()
        with self._uow() as tx:
            overdue = tx.tasks.running_past_deadline(now, limit=limit)
            for task in overdue:
                self._end(tx, task, TaskState.EXPIRED, reason="deadline_passed", actor=AuditActor.system())
        if overdue:
            self._on_revocations()
        return len(overdue)


def _found(task: Task | None, task_id: str) -> Task:
    if task is None:
        msg = f"no task {task_id!r}"
        raise NotFound(msg)
    return task


def _not_allowed(tx: TaskTransaction, agent_id: str, owner_id: str, workflow_id: str) -> str | None:
    """Why a running task with these parties may no longer run, or None while it may."""
    agent = tx.registry.get_agent(agent_id)
    if agent is None or not agent.is_active:
        return "agent_not_active"
    owner = tx.registry.get_owner(owner_id)
    if owner is None or not owner.is_active:
        return "owner_offboarded"
    workflow = tx.registry.get_workflow(workflow_id)
    if workflow is None or workflow.state is not WorkflowState.APPROVED:
        return "workflow_ended"
    return None
