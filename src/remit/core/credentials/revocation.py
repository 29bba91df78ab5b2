"""Revocation: single credentials (RFC 7009), and the reactions that end tasks when the registry changes.

Registry events arrive here through the event bus (the registry sits below credentials and cannot
call up): an owner offboarded or an agent suspended or retired ends every running task of that agent
(the kill switch), and a superseded or retired workflow version ends every task running under it.
The revocation log then carries the end to every replica's index.
"""

from __future__ import annotations

import datetime as dt

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from remit.core.audit.models import AuditActor, AuditEvent
from remit.core.clock import Clock
from remit.core.credentials.group_commit import GroupCommit
from remit.core.credentials.revocation_index import RevocationIndex
from remit.core.credentials.tokens import (
    CredentialRevocation,
    CredentialsTransaction,
    CredentialsUnitOfWork,
    RevocableCredential,
)
from remit.core.events import InProcessEventBus
from remit.core.ids import IdFactory
from remit.core.registry.events import AgentStatusChanged, OwnerOffboarded, WorkflowVersionEnded
from remit.core.tasks.revocations import RevocationEntry, RevocationKind
from remit.core.tasks.service import TaskService

__all__ = ["RevocationService", "RevocationUnit", "subscribe_revocation_handlers"]


@dataclass(slots=True, eq=False)
class RevocationUnit:
    """One credential to revoke; the batch write fills in the outcome (GroupCommit hands back only errors)."""

    jti: str
    reason: str
    actor: AuditActor
    agent_id: str | None  # when given, only that agent's credential is revoked
    at: dt.datetime
    event_id: str
    revoked: bool = False  # the credential exists (and is that agent's): revoked now or before
    entry: RevocationEntry | None = None  # the log entry written by this batch, if it was not revoked before


class RevocationService:
    """Revokes single credentials by `jti`.

    Throughput (ADR 0010): concurrent revocations are written together by `GroupCommit`, one
    transaction and one commit per batch; `_write` reads the batch's records in one statement (held
    until commit, so no concurrent writer revokes them twice), then marks, logs and audits the ones
    not revoked before with one statement each.
    """

    def __init__(  # noqa: PLR0913 - the composition root passes each collaborator explicitly
        self,
        uow: CredentialsUnitOfWork,
        *,
        clock: Clock,
        ids: IdFactory,
        fingerprint: Callable[[str], str],
        on_revocations: Callable[[], object] = lambda: None,
        index: RevocationIndex | None = None,
        max_batch: int = 256,
    ) -> None:
        self.commits: GroupCommit[CredentialsTransaction, RevocationUnit] = GroupCommit(
            uow, self._write, max_batch=max_batch
        )
        self._clock = clock
        self._ids = ids
        self._fingerprint = fingerprint
        self._on_revocations = on_revocations
        # With this process's index, the committed entry is applied to it directly (its own
        # verifications refuse the credential at once) instead of re-reading the log.
        self._index = index

    def revoke_credential(self, jti: str, *, reason: str, actor: AuditActor, agent_id: str | None = None) -> bool:
        """Revoke one credential; False when unknown or (with `agent_id`) not that agent's (RFC 7009 §2.2: no error).

        Idempotent: a credential revoked before is True again, with no second log entry or audit event.
        """
        unit = self._unit(jti, reason=reason, actor=actor, agent_id=agent_id)
        self.commits.submit(unit)
        return self._applied(unit)

    async def revoke_credential_async(
        self, jti: str, *, reason: str, actor: AuditActor, agent_id: str | None = None
    ) -> bool:
        """`revoke_credential` from an event loop: awaits the batch's commit without holding a thread."""
        unit = self._unit(jti, reason=reason, actor=actor, agent_id=agent_id)
        await self.commits.submit_async(unit)
        return self._applied(unit)

    def _unit(self, jti: str, *, reason: str, actor: AuditActor, agent_id: str | None) -> RevocationUnit:
        return RevocationUnit(
            jti=jti,
            reason=reason,
            actor=actor,
            agent_id=agent_id,
            at=self._clock.now(),
            event_id=self._ids.new("event"),
        )

    def _applied(self, unit: RevocationUnit) -> bool:
        """Apply a committed unit's entry to this process's index (its verifications refuse it at once)."""
        if unit.entry is not None:
            if self._index is not None:
                self._index.apply([unit.entry], now=unit.at)
            else:
                self._on_revocations()
        return unit.revoked

    def _write(self, tx: CredentialsTransaction, units: Sequence[RevocationUnit]) -> list[Exception | None]:
        """Write a batch in `tx` (GroupCommit's apply): each credential revoked once, however often it is named."""
        store = tx.revoking
        records = store.credentials_to_revoke({unit.jti for unit in units})
        first: dict[str, RevocationUnit] = {}  # jti → the unit that revokes it in this batch
        for unit in units:
            unit.revoked, unit.entry = False, None  # a batch retried unit by unit starts afresh
            found = records.get(unit.jti)
            if found is None or (unit.agent_id is not None and found.record.agent_id != unit.agent_id):
                continue
            unit.revoked = True
            if found.record.revoked_at is None:
                first.setdefault(unit.jti, unit)
        if not first:
            return [None] * len(units)
        revoking = list(first.values())
        seqs = store.revoke([CredentialRevocation(unit.jti, unit.reason, unit.at) for unit in revoking])
        for unit, seq in zip(revoking, seqs, strict=True):
            unit.entry = RevocationEntry(
                seq=seq, kind=RevocationKind.CREDENTIAL, subject=unit.jti, reason=unit.reason, at=unit.at
            )
        store.append_audit([self._event(unit, records[unit.jti]) for unit in revoking])
        for unit in units:
            # A second naming in the batch applies the same entry, so its caller too returns with it in the index.
            if unit.revoked and unit.entry is None and unit.jti in first:
                unit.entry = first[unit.jti].entry
        return [None] * len(units)

    def _event(self, unit: RevocationUnit, credential: RevocableCredential) -> AuditEvent:
        record = credential.record
        jti_hmac = self._fingerprint(unit.jti)
        return AuditEvent(
            id=unit.event_id,
            type="credential.revoked",
            occurred_at=unit.at,
            actor=unit.actor,
            subject_kind="credential",
            subject_id=jti_hmac,
            data={"jti_hmac": jti_hmac, "reason": unit.reason},
            task_id=record.task_id,
            agent_id=record.agent_id,
            owner_id=credential.owner_id,
            function_id=credential.function_id,
            correlation_id=record.task_id,
        )


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
