"""Engines for SQLite (WAL, foreign keys on) and PostgreSQL, and the SQL unit of work.

The unit of work satisfies every feature's transaction protocol structurally (`registry`, `audit`,
…), so no central module has to import every feature. Library exceptions are translated here:
`IntegrityError` → `Conflict`, anything else from the driver → `Unavailable`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError

from remit.adapters.sql.approvals import SqlApprovalStore, SqlOperatorStore
from remit.adapters.sql.audit import SqlAuditStore
from remit.adapters.sql.credentials import SqlCredentialStore, SqlIssuanceStore, SqlRevocationStore
from remit.adapters.sql.policies import SqlPolicyStore
from remit.adapters.sql.registry import SqlRegistryStore
from remit.adapters.sql.tasks import SqlRevocationLog, SqlTaskStore
from remit.errors import Conflict, InvalidRequest, RemitError, Unavailable

__all__ = ["SqlDatabase", "SqlTransaction"]

# How long a writer waits for its turn before the request fails as unavailable.
WRITER_WAIT_SECONDS = 30.0


@dataclass(slots=True)
class SqlTransaction:
    """One open transaction and the stores bound to it."""

    connection: Connection
    registry: SqlRegistryStore
    audit: SqlAuditStore
    tasks: SqlTaskStore
    revocations: SqlRevocationLog
    credentials: SqlCredentialStore
    issuance: SqlIssuanceStore
    revoking: SqlRevocationStore
    policies: SqlPolicyStore
    approvals: SqlApprovalStore
    operators: SqlOperatorStore

    @classmethod
    def on(cls, connection: Connection) -> SqlTransaction:
        audit = SqlAuditStore(connection)
        log = SqlRevocationLog(connection)
        return cls(
            connection=connection,
            registry=SqlRegistryStore(connection),
            audit=audit,
            tasks=SqlTaskStore(connection),
            revocations=log,
            credentials=SqlCredentialStore(connection),
            issuance=SqlIssuanceStore(connection, audit),
            revoking=SqlRevocationStore(connection, audit, log),
            policies=SqlPolicyStore(connection),
            approvals=SqlApprovalStore(connection),
            operators=SqlOperatorStore(connection),
        )


_SQLITE_MMAP_BYTES = 256 * 1024 * 1024
_SQLITE_CACHE_KIB = 32 * 1024


def _sqlite_pragmas(synchronous: str) -> Callable[[Any, object], None]:
    def on_connect(dbapi_connection: Any, _record: object) -> None:  # noqa: ANN401 - DB-API connections are untyped
        # Foreign keys are off by default in SQLite; WAL lets readers run beside the one writer.
        # FULL syncs the WAL at every commit (durable across power loss); NORMAL only at checkpoints
        # (durable across a crash of the process, not of the machine).
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=10000")
        # Reads through a memory map of the database file (the OS page cache, shared by every
        # connection) instead of a read system call per page; and a larger page cache for the
        # connection that writes, whose B-tree pages are reused batch after batch (the default is 2 MB).
        cursor.execute(f"PRAGMA mmap_size={_SQLITE_MMAP_BYTES}")
        cursor.execute(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")
        cursor.close()

    return on_connect


_READ_ONLY = "remit_read_only"


def _sqlite_begin_immediate(conn: Connection) -> None:
    # Take the write lock at BEGIN: a deferred transaction that later upgrades can fail with
    # SQLITE_BUSY at once instead of waiting, which a caller would see as a spurious outage.
    # A read-only transaction (`SqlDatabase.reading`) takes no lock: WAL readers never wait.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")


class SqlDatabase:
    """A connected database: hands out transactions and reports its health."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = threading.Lock()

    @contextlib.contextmanager
    def serialized(self) -> Iterator[None]:
        """On SQLite, queue this process's writers on a lock instead of SQLite's busy handler.

        SQLite admits one writer at a time (every transaction here begins IMMEDIATE). Its busy handler
        makes the others sleep and poll, with growing sleeps, which turns a short queue into long
        tails; a lock hands the turn over at once. PostgreSQL needs no such queue.
        """
        if self.engine.dialect.name != "sqlite":
            yield
            return
        if not self._writer.acquire(timeout=WRITER_WAIT_SECONDS):
            msg = "the store is busy; nothing was done"
            raise Unavailable(msg)
        try:
            yield
        finally:
            self._writer.release()

    @classmethod
    def connect(cls, url: str, *, echo: bool = False, sqlite_synchronous: str = "FULL") -> SqlDatabase:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            msg = "store url is not a database URL"
            raise InvalidRequest(msg, field="store.url") from exc
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(
                parsed,
                echo=echo,
                connect_args={"check_same_thread": False, "isolation_level": None},
                # The connection returned last is handed out next: a write transaction then mostly runs
                # on the connection whose page cache holds what the previous one wrote (SQLite drops a
                # connection's cache when another connection has written).
                pool_use_lifo=True,
            )
            if sqlite_synchronous not in {"FULL", "NORMAL"}:
                raise InvalidRequest("sqlite_synchronous is FULL or NORMAL", field="store.sqlite_synchronous")
            event.listen(engine, "connect", _sqlite_pragmas(sqlite_synchronous))
            event.listen(engine, "begin", _sqlite_begin_immediate)
        elif parsed.get_backend_name() == "postgresql":
            engine = create_engine(parsed, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=10)
        else:
            msg = "store url must be sqlite:// or postgresql+psycopg://"
            raise InvalidRequest(msg, field="store.url")
        return cls(engine)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        """Open a transaction: committed on normal exit, rolled back on an exception."""
        try:
            with self.serialized(), self.engine.begin() as connection:
                yield SqlTransaction.on(connection)
        except RemitError:
            raise
        except IntegrityError as exc:
            msg = "the change conflicts with existing data"
            raise Conflict(msg) from exc
        except (DBAPIError, SQLAlchemyError) as exc:
            msg = "the store is unavailable"
            raise Unavailable(msg) from exc

    @contextlib.contextmanager
    def reading(self) -> Iterator[SqlTransaction]:
        """Open a transaction for reads only: no writer lock (SQLite), so it never queues behind writers.

        On SQLite it sees one snapshot (WAL); on PostgreSQL, read committed as every transaction here.
        Anything written through it is rolled back.
        """
        try:
            with self.engine.connect() as connection:
                connection.execution_options(**{_READ_ONLY: True})
                with connection.begin() as transaction:
                    yield SqlTransaction.on(connection)
                    transaction.rollback()
        except RemitError:
            raise
        except (DBAPIError, SQLAlchemyError) as exc:
            msg = "the store is unavailable"
            raise Unavailable(msg) from exc

    def checkpoint(self) -> None:
        """SQLite: copy committed WAL pages into the database file without blocking anyone (PASSIVE).

        Run from a background thread, it keeps the WAL short, so SQLite's own automatic checkpoint
        (run by whichever commit crosses 1000 pages, inside that commit) rarely falls on a request.
        A no-op on PostgreSQL.
        """
        if self.engine.dialect.name != "sqlite":
            return
        try:
            # A raw autocommit connection: a checkpoint cannot run inside the transaction SQLAlchemy begins.
            raw = self.engine.raw_connection()
            try:
                raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").close()
            finally:
                raw.close()
        except (SQLAlchemyError, sqlite3.Error) as exc:
            msg = "the store is unavailable"
            raise Unavailable(msg) from exc

    def check(self) -> None:
        """Raise `Unavailable` unless the store answers a trivial query."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            msg = "the store is unavailable"
            raise Unavailable(msg) from exc

    def dispose(self) -> None:
        self.engine.dispose()
