"""Revocation: single credentials (RFC 7009), and the reactions that end tasks when the registry changes.

Registry events arrive here through the event bus (the registry sits below credentials and cannot
call up): an owner offboarded or an agent suspended or retired ends every running task of that agent
(the kill switch), and a superseded or retired workflow version ends every task running under it.
The revocation log then carries the end to every replica's index.
"""

from __future__ import annotations

from collections.abc import Callable

from remit.core.audit.models import AuditActor, AuditEvent
from remit.core.clock import Clock
from remit.core.credentials.revocation_index import RevocationIndex
from remit.core.credentials.tokens import CredentialsUnitOfWork
from remit.core.events import InProcessEventBus
from remit.core.ids import IdFactory
from remit.core.registry.events import AgentStatusChanged, OwnerOffboarded, WorkflowVersionEnded
from remit.core.tasks.revocations import RevocationEntry, RevocationKind
from remit.core.tasks.service import TaskService

__all__ = ["RevocationService", "subscribe_revocation_handlers"]


class RevocationService:
    """Revokes single credentials by `jti`."""

    def __init__(
        self,
        uow: CredentialsUnitOfWork,
        *,
        clock: Clock,
        ids: IdFactory,
        fingerprint: Callable[[str], str],
        on_revocations: Callable[[], object] = lambda: None,
        index: RevocationIndex | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._fingerprint = fingerprint
        self._on_revocations = on_revocations
        # With this process's index, the committed entry is applied to it directly (its own
        # verifications refuse the credential at once) instead of re-reading the log.
        self._index = index

    def revoke_credential(self, jti: str, *, reason: str, actor: AuditActor, agent_id: str | None = None) -> bool:
        """Revoke one credential; False when unknown or (with `agent_id`) not that agent's (RFC 7009 §2.2: no error)."""
        now = self._clock.now()
        with self._uow() as tx:
            record = tx.credentials.get_credential(jti)
            if record is None or (agent_id is not None and record.agent_id != agent_id):
                return False
            if not tx.credentials.mark_revoked(jti, at=now, reason=reason):
                return True  # already revoked: revocation is idempotent
            seq = tx.revocations.append(RevocationKind.CREDENTIAL, jti, reason=reason, at=now)
            task = tx.tasks.get_task(record.task_id)
            tx.audit.append(
                AuditEvent(
                    id=self._ids.new("event"),
                    type="credential.revoked",
                    occurred_at=now,
                    actor=actor,
                    subject_kind="credential",
                    subject_id=self._fingerprint(jti),
                    data={"jti_hmac": self._fingerprint(jti), "reason": reason},
                    task_id=record.task_id,
                    agent_id=record.agent_id,
                    owner_id=task.owner_id if task else None,
                    function_id=task.function_id if task else None,
                    correlation_id=record.task_id,
                )
            )
        if self._index is not None:
            entry = RevocationEntry(seq=seq, kind=RevocationKind.CREDENTIAL, subject=jti, reason=reason, at=now)
            self._index.apply([entry], now=now)
        else:
            self._on_revocations()
        return True


def subscribe_revocation_handlers(bus: InProcessEventBus, tasks: TaskService) -> None:
    """Wire registry events to task revocation (the composition root calls this once)."""
    system = AuditActor.system()

    def on_agent(event: AgentStatusChanged) -> None:
        if event.status in {"suspended", "retired"}:
            tasks.revoke_agent_tasks(event.agent_id, reason=f"agent_{event.status}", actor=system)

    def on_owner(event: OwnerOffboarded) -> None:
        # The agents were suspended in the same change; AgentStatusChanged already ended their tasks.
        # Handling it again is harmless and covers agents suspended before the owner left.
        for agent_id in event.suspended_agent_ids:
            tasks.revoke_agent_tasks(agent_id, reason="owner_offboarded", actor=system)

    def on_workflow(event: WorkflowVersionEnded) -> None:
        tasks.revoke_workflow_tasks(event.workflow_id, reason=f"workflow_{event.state}", actor=system)

    bus.subscribe(AgentStatusChanged, on_agent)
    bus.subscribe(OwnerOffboarded, on_owner)
    bus.subscribe(WorkflowVersionEnded, on_workflow)
