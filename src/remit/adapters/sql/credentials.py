"""CredentialStore and the single-use evidence guard over SQL."""

from __future__ import annotations

import datetime as dt

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from remit.adapters.sql.tables import credentials, evidence_uses
from remit.core.credentials.tokens import CredentialRecord
from remit.errors import Unavailable

if TYPE_CHECKING:
    from remit.adapters.sql.engine import SqlDatabase

__all__ = ["SqlCredentialStore", "SqlEvidenceUses"]


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


class SqlCredentialStore:
    """Issued-credential records (never the token) on the caller's transaction."""

    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add_credential(self, record: CredentialRecord) -> None:
        self._c.execute(
            _INSERT_CREDENTIAL,
            {
                "jti": record.jti,
                "task_id": record.task_id,
                "agent_id": record.agent_id,
                "audience": record.audience,
                "kid": "",
                "epoch": record.epoch,
                "cnf_jkt": record.cnf_jkt,
                "issued_at": record.issued_at,
                "expires_at": record.expires_at,
            },
        )

    def get_credential(self, jti: str) -> CredentialRecord | None:
        row = self._c.execute(select(credentials).where(credentials.c.jti == jti)).first()
        return None if row is None else _record(row)

    def mark_revoked(self, jti: str, *, at: dt.datetime, reason: str) -> bool:
        result = self._c.execute(
            update(credentials)
            .where(credentials.c.jti == jti, credentials.c.revoked_at.is_(None))
            .values(revoked_at=at, revoke_reason=reason)
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
