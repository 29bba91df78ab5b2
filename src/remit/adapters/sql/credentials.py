"""CredentialStore, the batched issuance writes and the single-use evidence guard over SQL."""

from __future__ import annotations

import datetime as dt

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, Row, Table, bindparam, delete, func, insert, literal, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql.expression import Executable

from remit.adapters.sql.registry import REGISTRY_LOCK_KEY
from remit.adapters.sql.tables import (
    agents,
    business_functions,
    credentials,
    evidence_uses,
    owners,
    tasks,
    tools,
    workflows,
)
from remit.adapters.sql.tasks import SqlRevocationLog, task_row
from remit.core.attestation.models import EvidenceUse
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


_INSERT_CREDENTIAL = insert(credentials)
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


def _credential_row(record: CredentialRecord) -> dict[str, Any]:
    return {
        "jti": record.jti,
        "task_id": record.task_id,
        "agent_id": record.agent_id,
        "audience": record.audience,
        "kid": "",
        "epoch": record.epoch,
        "cnf_jkt": record.cnf_jkt,
        "issued_at": record.issued_at,
        "expires_at": record.expires_at,
    }


_REVISIONED: Final[Mapping[str, Table]] = {
    "agent": agents,
    "owner": owners,
    "function": business_functions,
    "workflow": workflows,
    "tool": tools,
    "task": tasks,
}
# Built once per kind: `id IN (...)` with an expanding parameter compiles once and is reused.
_REVISIONS: Final = {
    kind: select(literal(kind).label("kind"), table.c.id, table.c.revision).where(
        table.c.id.in_(bindparam(f"{kind}_ids", expanding=True))
    )
    for kind, table in _REVISIONED.items()
}
# A use already recorded is skipped, not an error: RETURNING then names only the uses recorded now.
_CLAIM: Final = {
    "sqlite": sqlite.insert(evidence_uses)
    .on_conflict_do_nothing()
    .returning(evidence_uses.c.namespace, evidence_uses.c.jti),
    "postgresql": postgresql.insert(evidence_uses)
    .on_conflict_do_nothing()
    .returning(evidence_uses.c.namespace, evidence_uses.c.jti),
}


@cache
def _revisions_of(kinds: tuple[str, ...]) -> Executable:
    """One statement for the kinds a batch depends on, built once per combination."""
    return union_all(*(_REVISIONS[kind] for kind in kinds)) if len(kinds) > 1 else _REVISIONS[kinds[0]]


_INSERT_TASK: Final = insert(tasks)
_HOLD_REGISTRY: Final = select(func.pg_advisory_xact_lock_shared(REGISTRY_LOCK_KEY))


class SqlIssuanceStore:
    """The writes of a batch of issuances, on the caller's transaction (see core/credentials/tokens.py)."""

    def __init__(self, connection: Connection, audit: SqlAuditStore) -> None:
        self._c = connection
        self._audit = audit

    def hold_registry(self) -> None:
        # SQLite: every write transaction already holds the one database write lock.
        if self._c.dialect.name == "postgresql":
            self._c.execute(_HOLD_REGISTRY)

    def revisions(self, keys: Iterable[tuple[str, str]]) -> Mapping[tuple[str, str], int]:
        wanted: dict[str, list[str]] = defaultdict(list)
        for kind, entity_id in keys:
            wanted[kind].append(entity_id)
        if not wanted:
            return {}
        kinds = tuple(sorted(wanted))
        rows = self._c.execute(_revisions_of(kinds), {f"{kind}_ids": wanted[kind] for kind in kinds})
        return {(row.kind, row.id): row.revision for row in rows}

    def claim_evidence(self, uses: Sequence[EvidenceUse]) -> set[tuple[str, str]]:
        if not uses:
            return set()
        rows = self._c.execute(
            _CLAIM[self._c.dialect.name],
            [{"namespace": use.namespace, "jti": use.jti, "expires_at": use.expires_at} for use in uses],
        )
        return {(row.namespace, row.jti) for row in rows}

    def add_tasks(self, new: Sequence[Task]) -> None:
        if new:
            self._c.execute(_INSERT_TASK, [task_row(task) for task in new])

    def add_credentials(self, records: Sequence[CredentialRecord]) -> None:
        if records:
            self._c.execute(_INSERT_CREDENTIAL, [_credential_row(record) for record in records])

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

    def add_credential(self, record: CredentialRecord) -> None:
        self._c.execute(_INSERT_CREDENTIAL, _credential_row(record))

    def get_credential(self, jti: str) -> CredentialRecord | None:
        row = self._c.execute(_GET_CREDENTIAL, {"jti": jti}).first()
        return None if row is None else _record(row)

    def mark_revoked(self, jti: str, *, at: dt.datetime, reason: str) -> bool:
        result = self._c.execute(
            _MARK_REVOKED, {"revoked_jti": jti, "revoked_at_value": at, "revoke_reason_value": reason}
        )
        return result.rowcount == 1


class SqlEvidenceUses:
    """Single use of evidence and proof `jti`s across every replica: the primary key refuses a second use.

    Each call runs in its own short transaction, so a use is durable before the caller proceeds.
    """

    def __init__(self, database: SqlDatabase) -> None:
        self._database = database
        self._engine = database.engine

    def first_use(self, namespace: str, jti: str, expires_at: dt.datetime) -> bool:
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
