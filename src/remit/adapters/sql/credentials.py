"""CredentialStore, the batched issuance writes and the single-use evidence guard over SQL."""

from __future__ import annotations

import datetime as dt

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, Row, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from remit.adapters.sql.driver import Driver, insert_statements
from remit.adapters.sql.registry import REGISTRY_LOCK_KEY
from remit.adapters.sql.tables import credentials, evidence_uses, tasks
from remit.adapters.sql.tasks import SqlRevocationLog, SqlTaskStore, insert_tasks
from remit.core.attestation.models import EvidenceUse
from remit.core.attestation.waiting import WouldWait, waiting_allowed
from remit.core.audit.chain import PreparedRecord
from remit.core.audit.models import AuditEvent
from remit.core.credentials.tokens import CredentialRecord, CredentialRevocation, RevocableCredential
from remit.core.tasks.models import Task
from remit.errors import Unavailable

if TYPE_CHECKING:
    from remit.adapters.sql.audit import SqlAuditStore
    from remit.adapters.sql.engine import SqlDatabase

__all__ = ["SqlCredentialStore", "SqlEvidenceUses", "SqlIssuanceStore", "SqlRevocationStore"]


def _record(row: Row[Any]) -> CredentialRecord:
    return CredentialRecord(
        jti=row.jti,
        task_id=row.task_id,
        agent_id=row.agent_id,
        audience=row.audience,
        epoch=row.epoch,
        cnf_jkt=row.cnf_jkt,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        revoke_reason=row.revoke_reason,
    )


_CREDENTIAL_COLUMNS: Final = (
    "jti",
    "task_id",
    "agent_id",
    "audience",
    "kid",
    "epoch",
    "cnf_jkt",
    "issued_at",
    "expires_at",
)
_INSERT_CREDENTIALS: Final = insert_statements("credentials", _CREDENTIAL_COLUMNS)


def _insert_credentials(db: Driver, records: Sequence[CredentialRecord]) -> None:
    """Insert credential records in one statement (not yet revoked), in the transaction open on `db`."""
    if records:
        rows = [
            (
                r.jti,
                r.task_id,
                r.agent_id,
                r.audience,
                "",
                r.epoch,
                r.cnf_jkt,
                db.time(r.issued_at),
                db.time(r.expires_at),
            )
            for r in records
        ]
        db.insert(_INSERT_CREDENTIALS, rows)


_INSERT_USE = insert(evidence_uses)
_GET_CREDENTIAL = select(credentials).where(credentials.c.jti == bindparam("jti"))
_MARK_REVOKED = (
    update(credentials)
    .where(credentials.c.jti == bindparam("revoked_jti"), credentials.c.revoked_at.is_(None))
    .values(revoked_at=bindparam("revoked_at_value"), revoke_reason=bindparam("revoke_reason_value"))
)

# The credentials with their task's owner and function, rows locked in key order (PostgreSQL): two
# batches revoking overlapping credentials never deadlock. SQLite renders no FOR UPDATE; its one write
# lock, held from BEGIN IMMEDIATE, already serialises them. One jti (a lone caller) avoids the cost of
# expanding `IN` at every execution.
_REVOCABLE = (
    select(credentials, tasks.c.owner_id.label("task_owner_id"), tasks.c.function_id.label("task_function_id"))
    .join(tasks, tasks.c.id == credentials.c.task_id)
    .order_by(credentials.c.jti)
    .with_for_update(of=credentials)
)
_TO_REVOKE_ONE = _REVOCABLE.where(credentials.c.jti == bindparam("jti"))
_TO_REVOKE = _REVOCABLE.where(credentials.c.jti.in_(bindparam("jtis", expanding=True)))


# The batch's statements (see driver.py): each is one fixed text, so the driver's statement cache
# (SQLite) and prepared statements (PostgreSQL) serve it whatever the batch holds.
_REVISIONED: Final = {
    "agent": "agents",
    "owner": "owners",
    "function": "business_functions",
    "workflow": "workflows",
    "tool": "tools",
    "task": "tasks",
}
# The revision of every row a batch depends on, all kinds in one round trip. SQLite: one parameter,
# a JSON object of id lists by kind; PostgreSQL: one text array per kind.
_SQLITE_REVISIONS: Final = " UNION ALL ".join(
    f"SELECT '{kind}', id, revision FROM {table} WHERE id IN (SELECT value FROM json_each(?1, '$.{kind}'))"  # noqa: S608 - fixed names
    for kind, table in _REVISIONED.items()
)
_POSTGRES_REVISIONS: Final = " UNION ALL ".join(
    f"SELECT '{kind}'::text, id, revision FROM {table} WHERE id = ANY(%({kind})s::text[])"  # noqa: S608 - fixed names
    for kind, table in _REVISIONED.items()
)
# A use already recorded is skipped, not an error: RETURNING then names only the uses recorded now.
# (`WHERE true` tells SQLite's parser the ON CONFLICT belongs to the INSERT, not to a join.)
_SQLITE_CLAIM: Final = (
    "INSERT INTO evidence_uses (namespace, jti, expires_at)"
    " SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]')"
    " FROM json_each(?) WHERE true ON CONFLICT DO NOTHING RETURNING namespace, jti"
)
_POSTGRES_CLAIM: Final = (
    "INSERT INTO evidence_uses (namespace, jti, expires_at)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamp[])"
    " ON CONFLICT DO NOTHING RETURNING namespace, jti"
)
_HOLD_REGISTRY: Final = "SELECT pg_advisory_xact_lock_shared(%s)"


class SqlIssuanceStore:
    """The writes of a batch of issuances, on the caller's transaction (see core/credentials/tokens.py)."""

    def __init__(self, connection: Connection, audit: SqlAuditStore) -> None:
        self._c = connection
        self._audit = audit
        self._driver: Driver | None = None

    @property
    def _db(self) -> Driver:
        if self._driver is None:
            self._driver = Driver(self._c)
        return self._driver

    def hold_registry(self) -> None:
        # SQLite: every write transaction already holds the one database write lock.
        db = self._db
        if db.postgres:
            with db.errors():
                db.raw.execute(_HOLD_REGISTRY, (REGISTRY_LOCK_KEY,))

    def hold_tasks(self, task_ids: Collection[str]) -> None:
        # SQLite: the write transaction already holds the whole database.
        if task_ids and self._db.postgres:
            SqlTaskStore(self._c).hold_tasks(task_ids)

    def revisions(self, keys: Iterable[tuple[str, str]]) -> Mapping[tuple[str, str], int]:
        wanted: dict[str, list[str]] = {}
        for kind, entity_id in keys:
            if kind not in _REVISIONED:
                msg = f"no revisions are kept for {kind!r}"
                raise ValueError(msg)
            wanted.setdefault(kind, []).append(entity_id)
        if not wanted:
            return {}
        db = self._db
        with db.errors():
            if db.postgres:
                rows = db.raw.execute(_POSTGRES_REVISIONS, {kind: wanted.get(kind, []) for kind in _REVISIONED})
            else:
                rows = db.raw.execute(_SQLITE_REVISIONS, (db.json(wanted),))
            return {(kind, entity_id): revision for kind, entity_id, revision in rows.fetchall()}

    def claim_evidence(self, uses: Sequence[EvidenceUse]) -> set[tuple[str, str]]:
        if not uses:
            return set()
        db = self._db
        with db.errors():
            if db.postgres:
                columns = (
                    [use.namespace for use in uses],
                    [use.jti for use in uses],
                    [db.time(use.expires_at) for use in uses],
                )
                rows = db.raw.execute(_POSTGRES_CLAIM, columns)
            else:
                triples = [(use.namespace, use.jti, db.time(use.expires_at)) for use in uses]
                rows = db.raw.execute(_SQLITE_CLAIM, (db.json(triples),))
            return {(namespace, jti) for namespace, jti in rows.fetchall()}

    def add_tasks(self, new: Sequence[Task]) -> None:
        insert_tasks(self._db, new)

    def bind_tasks(self, bound: Sequence[Task]) -> None:
        # Rare (a task started Bearer, bound by a later re-issue): the task store's checked update is enough.
        store = SqlTaskStore(self._c)
        for task in bound:
            store.update_task(task, expected_revision=task.revision - 1)

    def add_credentials(self, records: Sequence[CredentialRecord]) -> None:
        _insert_credentials(self._db, records)

    def append_prepared(self, records: Sequence[PreparedRecord]) -> None:
        self._audit.append_prepared(records)


class SqlRevocationStore:
    """The writes of a batch of credential revocations, on the caller's transaction (see core/credentials/tokens.py)."""

    def __init__(self, connection: Connection, audit: SqlAuditStore, log: SqlRevocationLog) -> None:
        self._c = connection
        self._audit = audit
        self._log = log

    def credentials_to_revoke(self, jtis: Collection[str]) -> Mapping[str, RevocableCredential]:
        if not jtis:
            return {}
        if len(jtis) == 1:
            rows = self._c.execute(_TO_REVOKE_ONE, {"jti": next(iter(jtis))})
        else:
            rows = self._c.execute(_TO_REVOKE, {"jtis": list(jtis)})
        return {
            row.jti: RevocableCredential(_record(row), owner_id=row.task_owner_id, function_id=row.task_function_id)
            for row in rows
        }

    def revoke(self, revocations: Sequence[CredentialRevocation]) -> list[int]:
        if not revocations:
            return []
        self._c.execute(
            _MARK_REVOKED,
            [{"revoked_jti": r.jti, "revoked_at_value": r.at, "revoke_reason_value": r.reason} for r in revocations],
        )
        return self._log.append_credentials([(r.jti, r.reason, r.at) for r in revocations])

    def append_audit(self, events: Sequence[AuditEvent]) -> None:
        self._audit.append_many(events)


class SqlCredentialStore:
    """Issued-credential records (never the token) on the caller's transaction."""

    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def get_credential(self, jti: str) -> CredentialRecord | None:
        row = self._c.execute(_GET_CREDENTIAL, {"jti": jti}).first()
        return None if row is None else _record(row)


class SqlEvidenceUses:
    """Single use of evidence and proof `jti`s across every replica: the primary key refuses a second use.

    Each call runs in its own short transaction, so a use is durable before the caller proceeds.
    """

    def __init__(self, database: SqlDatabase) -> None:
        self._database = database
        self._engine = database.engine

    def first_use(self, namespace: str, jti: str, expires_at: dt.datetime) -> bool:
        if not waiting_allowed():
            raise WouldWait  # a durable write: never on an event loop; nothing is spent before this
        try:
            with self._database.serialized(), self._engine.begin() as connection:
                connection.execute(_INSERT_USE, {"namespace": namespace, "jti": jti, "expires_at": expires_at})
        except IntegrityError:
            return False
        except SQLAlchemyError as exc:
            msg = "cannot record evidence use"
            raise Unavailable(msg) from exc
        return True

    def purge(self, now: dt.datetime) -> int:
        with self._database.serialized(), self._engine.begin() as connection:
            return int(connection.execute(delete(evidence_uses).where(evidence_uses.c.expires_at < now)).rowcount)
