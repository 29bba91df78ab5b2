"""The audit chain over SQL: chained appends inside a transaction, checkpoints, and paged reads.

Chain ordering (ADR 0007): the sequence and previous hash of a new record are taken from the
last stored record while holding the chain lock. On SQLite every write transaction already holds
the database write lock (BEGIN IMMEDIATE); on PostgreSQL the first append of a transaction takes
a transaction-scoped advisory lock (`pg_advisory_xact_lock`), held until commit or rollback. So
concurrent writers get consecutive sequence numbers, no gaps and no forks; `seq` being the primary
key turns any fork into a failed commit instead of a second chain.
"""

from __future__ import annotations

import datetime as dt
import json

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import Connection, Engine, column, func, insert, select, table
from sqlalchemy.exc import SQLAlchemyError

from remit.adapters.sql.tables import audit_checkpoints, audit_events
from remit.core.audit.chain import seal
from remit.core.audit.models import (
    GENESIS_HASH,
    ActorKind,
    AuditActor,
    AuditEvent,
    Checkpoint,
    SealedRecord,
    UnreadableRecord,
)
from remit.errors import Unavailable

__all__ = ["CHAIN_LOCK_KEY", "SqlAuditLedger", "SqlAuditStore"]

# The PostgreSQL advisory lock that serialises chain appends ("REMITAUD" as a signed 64-bit key).
# Another application sharing the database must not use the same key.
CHAIN_LOCK_KEY: Final = 0x52454D4954415544

_COLUMNS: Final = (
    "seq",
    "schema",
    "id",
    "type",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "subject_kind",
    "subject_id",
    "task_id",
    "agent_id",
    "owner_id",
    "function_id",
    "correlation_id",
    "data",
    "prev_hash",
    "hash",
)
# The same table with untyped columns: reads get the stored values as they are, so a damaged value
# becomes an `UnreadableRecord` that verification reports, instead of an exception that hides it.
_raw_events = table("audit_events", *(column(name) for name in _COLUMNS))


def _row_values(record: SealedRecord) -> dict[str, Any]:
    event = record.event
    return {
        "seq": record.sequence,
        "id": event.id,
        "schema": record.schema,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "actor_kind": event.actor.kind.value,
        "actor_id": event.actor.id,
        "subject_kind": event.subject_kind,
        "subject_id": event.subject_id,
        "task_id": event.task_id,
        "agent_id": event.agent_id,
        "owner_id": event.owner_id,
        "function_id": event.function_id,
        "correlation_id": event.correlation_id,
        "data": event.data,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


_SQLITE_TIME_LENGTH: Final = len("2026-01-15 09:00:00.000000")


def _instant(value: object) -> dt.datetime:
    if isinstance(value, str):
        # Only the exact form SQLite rows are written in: an equivalent spelling ("T" or "," for
        # " " or ".") is still a changed stored value, and verification must see it.
        if len(value) != _SQLITE_TIME_LENGTH or value[10] != " " or value[19] != ".":
            raise ValueError(value)
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise TypeError(type(value).__name__)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _object(value: object) -> dict[str, Any]:
    if isinstance(value, str | bytes):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise TypeError(type(value).__name__)
    return value


def _integer(value: object) -> int:
    if type(value) is not int:
        raise TypeError(type(value).__name__)
    return value


def _decode(row: Any) -> SealedRecord | UnreadableRecord:  # noqa: ANN401 - a SQLAlchemy Row of untyped columns
    try:
        data = _object(row.data)
        schema = _integer(row.schema)
        event = AuditEvent(
            id=row.id,
            type=row.type,
            occurred_at=_instant(row.occurred_at),
            actor=AuditActor(ActorKind(row.actor_kind), row.actor_id),
            subject_kind=row.subject_kind,
            subject_id=row.subject_id,
            data=data,
            task_id=row.task_id,
            agent_id=row.agent_id,
            owner_id=row.owner_id,
            function_id=row.function_id,
            correlation_id=row.correlation_id,
        )
        return SealedRecord(sequence=row.seq, prev_hash=row.prev_hash, hash=row.hash, event=event, schema=schema)
    except (ValueError, TypeError) as exc:
        return UnreadableRecord(sequence=row.seq, reason=type(exc).__name__)


def _checkpoint(row: Any) -> Checkpoint:  # noqa: ANN401 - a SQLAlchemy Row
    return Checkpoint(
        sequence=row.seq,
        head_hash=row.head_hash,
        created_at=row.created_at,
        key_id=row.key_id,
        signature=row.signature,
        algorithm=row.algorithm,
    )


# Built once: constructing statements per append costs more than executing them.
_HEAD = select(audit_events.c.seq, audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1)
_INSERT_EVENT = insert(audit_events)


class SqlAuditStore:
    """Appends chained audit rows in the caller's transaction; durable when that transaction commits."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        # (sequence, hash) of the head once this transaction holds the chain lock.
        self._head: tuple[int, str] | None = None

    def head(self) -> tuple[int, str]:
        """Take the chain lock (once per transaction) and return the head: (sequence, hash)."""
        if self._head is None:
            if self._connection.dialect.name == "postgresql":
                self._connection.execute(select(func.pg_advisory_xact_lock(CHAIN_LOCK_KEY)))
            last = self._connection.execute(_HEAD).first()
            self._head = (last.seq, last.hash) if last is not None else (0, GENESIS_HASH)
        return self._head

    def append(self, event: AuditEvent) -> SealedRecord:
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[AuditEvent]) -> list[SealedRecord]:
        """Chain `events` after the head, in order, and insert them in one statement."""
        sequence, previous = self.head()
        records: list[SealedRecord] = []
        for event in events:
            sequence += 1
            record = seal(previous, sequence, event)
            previous = record.hash
            records.append(record)
        if records:
            self._connection.execute(_INSERT_EVENT, [_row_values(r) for r in records])
            self._head = (sequence, previous)
        return records

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        self._connection.execute(
            insert(audit_checkpoints).values(
                seq=checkpoint.sequence,
                head_hash=checkpoint.head_hash,
                created_at=checkpoint.created_at,
                key_id=checkpoint.key_id,
                algorithm=checkpoint.algorithm,
                signature=checkpoint.signature,
            )
        )

    def latest_checkpoint(self) -> Checkpoint | None:
        row = self._connection.execute(
            select(audit_checkpoints).order_by(audit_checkpoints.c.seq.desc()).limit(1)
        ).first()
        return None if row is None else _checkpoint(row)

    def recent(self, *, limit: int = 100, subject_id: str | None = None) -> Sequence[AuditEvent]:
        """The newest events first (for tests and quick looks; `SqlAuditLedger.read` pages the chain)."""
        query = select(_raw_events).order_by(_raw_events.c.seq.desc()).limit(limit)
        if subject_id is not None:
            query = query.where(_raw_events.c.subject_id == subject_id)
        records = [_decode(row) for row in self._connection.execute(query)]
        return [r.event for r in records if isinstance(r, SealedRecord)]


class SqlAuditLedger:
    """Reads the chain in pages and keeps checkpoints, each call in its own short transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def read(
        self,
        *,
        after: int = 0,
        limit: int = 1000,
        task_id: str | None = None,
        agent_id: str | None = None,
        types: Sequence[str] = (),
    ) -> Sequence[SealedRecord | UnreadableRecord]:
        query = select(_raw_events).where(_raw_events.c.seq > after).order_by(_raw_events.c.seq).limit(limit)
        if task_id is not None:
            query = query.where(_raw_events.c.task_id == task_id)
        if agent_id is not None:
            query = query.where(_raw_events.c.agent_id == agent_id)
        if types:
            query = query.where(_raw_events.c.type.in_(list(types)))
        try:
            with self._engine.begin() as connection:
                return [_decode(row) for row in connection.execute(query)]
        except SQLAlchemyError as exc:
            raise Unavailable("the audit store is unavailable") from exc

    def head(self) -> tuple[int, str]:
        try:
            with self._engine.begin() as connection:
                last = connection.execute(
                    select(audit_events.c.seq, audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1)
                ).first()
        except SQLAlchemyError as exc:
            raise Unavailable("the audit store is unavailable") from exc
        return (last.seq, last.hash) if last is not None else (0, GENESIS_HASH)

    def checkpoints(self) -> Sequence[Checkpoint]:
        try:
            with self._engine.begin() as connection:
                rows = connection.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq)).all()
        except SQLAlchemyError as exc:
            raise Unavailable("the audit store is unavailable") from exc
        return [_checkpoint(row) for row in rows]

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        try:
            with self._engine.begin() as connection:
                SqlAuditStore(connection).add_checkpoint(checkpoint)
        except SQLAlchemyError as exc:
            raise Unavailable("the audit store is unavailable") from exc
