"""PolicyStore over SQL: policy documents, their immutable versions, the active version of each, the generation."""

from __future__ import annotations

import datetime as dt

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from remit.adapters.sql.notify import POLICIES, notify
from remit.adapters.sql.tables import policies, policy_state, policy_versions
from remit.core.authorization.policies import PolicyDocument, PolicyVersion
from remit.core.registry.models import Page
from remit.errors import Conflict

__all__ = ["SqlPolicyStore"]

_STATE_ROW = 1


def _version(row: Row[Any]) -> PolicyVersion:
    return PolicyVersion(
        id=row.id,
        name=row.name,
        version=row.version,
        text=row.text,
        sha256=row.sha256,
        description=row.description,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _document(row: Row[Any]) -> PolicyDocument:
    return PolicyDocument(
        name=row.name,
        latest_version=row.latest_version,
        active_version=row.active_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        activated_by=row.activated_by,
        activated_at=row.activated_at,
    )


_GENERATION = select(policy_state.c.generation).where(policy_state.c.id == _STATE_ROW)
_ACTIVE = (
    select(policy_versions)
    .join(
        policies,
        (policies.c.name == policy_versions.c.name) & (policies.c.active_version == policy_versions.c.version),
    )
    .order_by(policy_versions.c.name)
)


class SqlPolicyStore:
    """Policies, read and written on the caller's transaction."""

    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add_version(self, version: PolicyVersion) -> None:
        document = self.get_document(version.name)
        if document is None:
            if version.version != 1:
                msg = f"policy {version.name} does not exist; its first version is 1"
                raise Conflict(msg)
            self._c.execute(
                insert(policies).values(
                    name=version.name,
                    latest_version=1,
                    active_version=None,
                    created_at=version.created_at,
                    updated_at=version.created_at,
                )
            )
        else:
            # Compare-and-set on the latest version: two concurrent adds cannot both take the same number.
            result = self._c.execute(
                update(policies)
                .where(policies.c.name == version.name, policies.c.latest_version == version.version - 1)
                .values(latest_version=version.version, updated_at=version.created_at)
            )
            if result.rowcount != 1:
                msg = f"policy {version.name} changed concurrently; retry"
                raise Conflict(msg)
        self._c.execute(
            insert(policy_versions).values(
                id=version.id,
                name=version.name,
                version=version.version,
                text=version.text,
                sha256=version.sha256,
                description=version.description,
                created_by=version.created_by,
                created_at=version.created_at,
            )
        )

    def get_version(self, name: str, version: int) -> PolicyVersion | None:
        row = self._c.execute(
            select(policy_versions).where(policy_versions.c.name == name, policy_versions.c.version == version)
        ).first()
        return None if row is None else _version(row)

    def versions(self, name: str) -> Sequence[PolicyVersion]:
        query = select(policy_versions).where(policy_versions.c.name == name).order_by(policy_versions.c.version)
        return [_version(r) for r in self._c.execute(query)]

    def get_document(self, name: str) -> PolicyDocument | None:
        row = self._c.execute(select(policies).where(policies.c.name == name)).first()
        return None if row is None else _document(row)

    def list_documents(self, *, limit: int, after: str | None) -> Page[PolicyDocument]:
        query = select(policies).order_by(policies.c.name).limit(limit + 1)
        if after is not None:
            query = query.where(policies.c.name > after)
        rows = self._c.execute(query).all()
        return Page(
            items=tuple(_document(r) for r in rows[:limit]),
            next_cursor=rows[limit - 1].name if len(rows) > limit else None,
        )

    def set_active(self, name: str, version: int | None, *, by: str, at: dt.datetime) -> None:
        result = self._c.execute(
            update(policies)
            .where(policies.c.name == name)
            .values(active_version=version, activated_by=by, activated_at=at, updated_at=at)
        )
        if result.rowcount != 1:
            msg = f"no policy {name!r}"
            raise Conflict(msg)

    def active_versions(self) -> Sequence[PolicyVersion]:
        return [_version(r) for r in self._c.execute(_ACTIVE)]

    def generation(self) -> int:
        found = self._c.execute(_GENERATION).scalar()
        return 0 if found is None else int(found)

    def bump_generation(self, at: dt.datetime) -> int:
        # One atomic upsert: the row appears on the first activation, and on PostgreSQL the row lock
        # orders concurrent activations so generations follow commit order.
        values = {"id": _STATE_ROW, "generation": 1, "changed_at": at}
        bumped = {"generation": policy_state.c.generation + 1, "changed_at": at}
        if self._c.dialect.name == "postgresql":
            upsert: Any = postgresql.insert(policy_state).values(values)
        else:
            upsert = sqlite.insert(policy_state).values(values)
        statement = upsert.on_conflict_do_update(index_elements=[policy_state.c.id], set_=bumped)
        generation = int(self._c.execute(statement.returning(policy_state.c.generation)).scalar_one())
        notify(self._c, POLICIES)  # other replicas reload when (and only if) this commits
        return generation
