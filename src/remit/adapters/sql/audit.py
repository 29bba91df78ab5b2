"""AuditStore over SQL: one row per event, written in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, insert, select

from remit.adapters.sql.tables import audit_events
from remit.core.audit.models import ActorKind, AuditActor, AuditEvent

__all__ = ["SqlAuditStore"]


class SqlAuditStore:
    """Appends audit rows; durable when the enclosing transaction commits."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def append(self, event: AuditEvent) -> None:
        self._connection.execute(
            insert(audit_events).values(
                id=event.id,
                schema=AuditEvent.SCHEMA,
                type=event.type,
                occurred_at=event.occurred_at,
                actor_kind=event.actor.kind.value,
                actor_id=event.actor.id,
                subject_kind=event.subject_kind,
                subject_id=event.subject_id,
                task_id=event.task_id,
                agent_id=event.agent_id,
                owner_id=event.owner_id,
                function_id=event.function_id,
                correlation_id=event.correlation_id,
                data=event.data,
            )
        )

    def recent(self, *, limit: int = 100, subject_id: str | None = None) -> Sequence[AuditEvent]:
        query = select(audit_events).order_by(audit_events.c.seq.desc()).limit(limit)
        if subject_id is not None:
            query = query.where(audit_events.c.subject_id == subject_id)
        return [
            AuditEvent(
                id=row.id,
                type=row.type,
                occurred_at=row.occurred_at,
                actor=AuditActor(ActorKind(row.actor_kind), row.actor_id),
                subject_kind=row.subject_kind,
                subject_id=row.subject_id,
                data=row.data,
                task_id=row.task_id,
                agent_id=row.agent_id,
                owner_id=row.owner_id,
                function_id=row.function_id,
                correlation_id=row.correlation_id,
            )
            for row in self._connection.execute(query)
        ]
