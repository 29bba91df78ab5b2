"""The audit chain over SQL: chained appends inside a transaction, checkpoints, and paged reads.

Chain ordering (ADR 0007): the sequence and previous hash of a new record are taken from the
last stored record while holding the chain lock. On SQLite every write transaction already holds
the database write lock (BEGIN IMMEDIATE); on PostgreSQL the first append of a transaction takes
a transaction-scoped advisory lock (`pg_advisory_xact_lock`), held until commit or rollback. So
concurrent writers get consecutive sequence numbers, no gaps and no forks; `seq` being the primary
key turns any fork into a failed commit instead of a second chain.
"""

from __future__ import annotations

import contextlib
import sqlite3

from collections.abc import Iterator, Sequence
from typing import Any, Final

from sqlalchemy import Connection, Engine, column, insert, select, table
from sqlalchemy.exc import SQLAlchemyError

from remit.adapters.sql.tables import audit_checkpoints, audit_events
from remit.core.audit.chain import PreparedRecord, prepare, read_stored, seal_batch
from remit.core.audit.models import (
    GENESIS_HASH,
    AuditEvent,
    Checkpoint,
    SealedRecord,
    StoredRecord,
    UnreadableRecord,
)
from remit.errors import Conflict, Unavailable

__all__ = ["CHAIN_LOCK_KEY", "DriverChain", "SqlAuditLedger", "SqlAuditStore", "driver_errors"]

# The PostgreSQL advisory lock that serialises chain appends ("REMITAUD" as a signed 64-bit key).
# Another application sharing the database must not use the same key.
CHAIN_LOCK_KEY: Final = 0x52454D4954415544

# Column order of a stored row, as `StoredRecord` holds it.
_STORED: Final = ("seq", "prev_hash", "hash", "record", "id", "type", "task_id", "agent_id")
# The same table with untyped columns: reads get the stored values as they are, so a damaged value
# becomes a fault that verification reports, instead of an exception that hides it.
_raw_events = table("audit_events", *(column(name) for name in _STORED))
_INSERT_COLUMNS: Final = ", ".join(_STORED)


def _checkpoint(row: Any) -> Checkpoint:  # noqa: ANN401 - a SQLAlchemy Row
    return Checkpoint(
        sequence=row.seq,
        head_hash=row.head_hash,
        created_at=row.created_at,
        key_id=row.key_id,
        signature=row.signature,
        algorithm=row.algorithm,
    )


# The chain's hot statements go straight to the DB-API driver: through SQLAlchemy each cost more
# than the database's own work. One executemany (SQLite) or one COPY (PostgreSQL) per batch.
_HEAD_SQL: Final = "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
_LOCK_SQL: Final = "SELECT pg_advisory_xact_lock(%s)"
_SQLITE_INSERT: Final = f"INSERT INTO audit_events ({_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608 - fixed names
_POSTGRES_COPY: Final = f"COPY audit_events ({_INSERT_COLUMNS}) FROM STDIN"
_SELECT_STORED = select(_raw_events)


@contextlib.contextmanager
def driver_errors(
    *,
    postgres: bool,
    conflict: str = "the audit record conflicts with an existing one",
    unavailable: str = "the audit store is unavailable",
) -> Iterator[None]:
    """Translate the driver's own exceptions, as `SqlDatabase.transaction` does SQLAlchemy's."""
    if postgres:
        import psycopg  # noqa: PLC0415 - only PostgreSQL deployments need the driver

        integrity: type[Exception] = psycopg.errors.IntegrityError
        failure: type[Exception] = psycopg.Error
    else:
        integrity, failure = sqlite3.IntegrityError, sqlite3.Error
    try:
        yield
    except integrity as exc:
        raise Conflict(conflict) from exc
    except failure as exc:
        raise Unavailable(unavailable) from exc


class DriverChain:
    """Appends to the chain on a DB-API connection, inside the transaction open on it.

    The first append takes the chain lock (PostgreSQL: a transaction-scoped advisory lock; SQLite:
    the write lock the transaction already holds) and reads the head; later ones continue from it.
    """

    def __init__(self, driver: Any, *, postgres: bool) -> None:  # noqa: ANN401 - a DB-API connection
        self._driver = driver
        self._postgres = postgres
        # (sequence, hash) of the head once this transaction holds the chain lock.
        self._head: tuple[int, str] | None = None

    def head(self) -> tuple[int, str]:
        """Take the chain lock (once per transaction) and return the head: (sequence, hash)."""
        if self._head is None:
            with driver_errors(postgres=self._postgres):
                if self._postgres:
                    self._driver.execute(_LOCK_SQL, (CHAIN_LOCK_KEY,))
                last = self._driver.execute(_HEAD_SQL).fetchone()
            self._head = (last[0], last[1]) if last is not None else (0, GENESIS_HASH)
        return self._head

    def append_prepared(self, prepared: Sequence[PreparedRecord]) -> list[SealedRecord]:
        """Chain already canonicalised events after the head, in order, and write them in one statement."""
        if not prepared:
            return []
        sequence, previous = self.head()
        sealed = seal_batch(previous, sequence, prepared)
        rows = [
            (r.sequence, r.prev_hash, r.hash, document, r.event.id, r.event.type, r.event.task_id, r.event.agent_id)
            for r, document in sealed
        ]
        with driver_errors(postgres=self._postgres):
            if self._postgres:
                with self._driver.cursor() as cursor, cursor.copy(_POSTGRES_COPY) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                self._driver.executemany(_SQLITE_INSERT, rows)
        last = sealed[-1][0]
        self._head = (last.sequence, last.hash)
        return [record for record, _ in sealed]


class SqlAuditStore:
    """Appends chained audit rows in the caller's transaction; durable when that transaction commits."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._chain: DriverChain | None = None

    def _driver_chain(self) -> DriverChain:
        if self._chain is None:
            postgres = self._connection.dialect.name == "postgresql"
            self._chain = DriverChain(self._connection.connection.driver_connection, postgres=postgres)
        return self._chain

    def head(self) -> tuple[int, str]:
        """Take the chain lock (once per transaction) and return the head: (sequence, hash)."""
        return self._driver_chain().head()

    def append(self, event: AuditEvent) -> SealedRecord:
        return self._driver_chain().append_prepared([prepare(event)])[0]

    def append_many(self, events: Sequence[AuditEvent]) -> list[SealedRecord]:
        """Chain `events` after the head, in order, and insert them in one statement."""
        return self._driver_chain().append_prepared([prepare(event) for event in events])

    def append_prepared(self, prepared: Sequence[PreparedRecord]) -> list[SealedRecord]:
        """Chain already canonicalised events after the head, in order, and write them in one statement."""
        return self._driver_chain().append_prepared(prepared)

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
        query = _SELECT_STORED.order_by(_raw_events.c.seq.desc())
        events: list[AuditEvent] = []
        for row in self._connection.execute(query):
            record = read_stored(StoredRecord._make(row))
            if isinstance(record, SealedRecord) and subject_id in {None, record.event.subject_id}:
                events.append(record.event)
                if len(events) == limit:
                    break
        return events


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
        query = _SELECT_STORED.where(_raw_events.c.seq > after).order_by(_raw_events.c.seq).limit(limit)
        if task_id is not None:
            query = query.where(_raw_events.c.task_id == task_id)
        if agent_id is not None:
            query = query.where(_raw_events.c.agent_id == agent_id)
        if types:
            query = query.where(_raw_events.c.type.in_(list(types)))
        return [read_stored(row) for row in self._rows(query)]

    def stored(self, *, after: int, limit: int) -> Sequence[StoredRecord]:
        query = _SELECT_STORED.where(_raw_events.c.seq > after).order_by(_raw_events.c.seq).limit(limit)
        return self._rows(query)

    def _rows(self, query: Any) -> list[StoredRecord]:  # noqa: ANN401 - a Select over the untyped table
        try:
            with self._engine.begin() as connection:
                return list(map(StoredRecord._make, connection.execute(query)))
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
