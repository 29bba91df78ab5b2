"""Audit rows keep the exact JCS bytes their hash covers (`record`); the columns derivable from it go (ADR 0009).

Every existing row gets `record = JCS(record document)` rebuilt from its columns exactly as
verification rebuilt it before, so an intact row stays intact (its hash covers those very bytes)
and a row altered before the upgrade still fails verification at its sequence. A row whose columns
cannot even be decoded gets a document naming the raw values, which cannot match its hash.
`id`, `type`, `task_id` and `agent_id` stay as lookup columns.

Revision ID: 0005
Revises: 0003
"""

from __future__ import annotations

import datetime as dt
import json

from collections.abc import Mapping
from typing import Any, Final

import sqlalchemy as sa

from alembic import op

from remit.core.audit.chain import canonical_json, record_document
from remit.core.audit.models import ActorKind, AuditActor, AuditEvent

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_PAGE: Final = 2000
_DERIVED: Final = (
    "schema",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "subject_kind",
    "subject_id",
    "owner_id",
    "function_id",
    "correlation_id",
    "data",
)
_SQLITE_TIME_LENGTH: Final = len("2026-01-15 09:00:00.000000")


# ------------------------------------------------------------------ decoding the old columns, as 0003 verified them


def _instant(value: object) -> dt.datetime:
    if isinstance(value, str):
        # Only the exact form SQLite rows were written in: another spelling was a changed value.
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


def _document(row: Mapping[Any, Any]) -> str:
    try:
        event = AuditEvent(
            id=row["id"],
            type=row["type"],
            occurred_at=_instant(row["occurred_at"]),
            actor=AuditActor(ActorKind(row["actor_kind"]), row["actor_id"]),
            subject_kind=row["subject_kind"],
            subject_id=row["subject_id"],
            data=_object(row["data"]),
            task_id=row["task_id"],
            agent_id=row["agent_id"],
            owner_id=row["owner_id"],
            function_id=row["function_id"],
            correlation_id=row["correlation_id"],
        )
        return canonical_json(record_document(row["seq"], event, schema=_integer(row["schema"]))).decode("utf-8")
    except Exception as exc:  # noqa: BLE001 - any undecodable row is kept, marked, and fails verification
        raw = {name: None if value is None else str(value) for name, value in row.items()}
        marker = {"unreadable": type(exc).__name__, "columns": raw}
        return json.dumps(marker, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("record", sa.Text(), nullable=True))
    connection = op.get_bind()
    old = sa.table(
        "audit_events",
        *(sa.column(name) for name in ("seq", "id", "type", "task_id", "agent_id", *_DERIVED)),
    )
    target = sa.table("audit_events", sa.column("seq"), sa.column("record"))
    update = target.update().where(target.c.seq == sa.bindparam("s")).values(record=sa.bindparam("r"))
    after: int | None = None
    while True:
        query = sa.select(old).order_by(old.c.seq).limit(_PAGE)
        if after is not None:
            query = query.where(old.c.seq > after)
        rows = connection.execute(query).mappings().all()
        if not rows:
            break
        connection.execute(update, [{"s": row["seq"], "r": _document(row)} for row in rows])
        after = rows[-1]["seq"]
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("record", existing_type=sa.Text(), nullable=False)
        for name in _DERIVED:
            batch.drop_column(name)


# ------------------------------------------------------------------ downgrade: the columns again, from the documents


def _number(text: str) -> int | float:
    # JCS numbers are doubles: an integer beyond 2**53 was written from a float and must stay one.
    value = int(text)
    return value if abs(value) < 2**53 else float(text)


def _columns(document: str) -> dict[str, Any]:
    try:
        body = json.loads(document, parse_int=_number)
        actor = body["actor"]
        return {
            "schema": int(body["schema"]),
            "occurred_at": dt.datetime.strptime(body["occurred_at"], "%Y-%m-%dT%H:%M:%S.%fZ"),  # noqa: DTZ007 - naive UTC, as 0003 stored it
            "actor_kind": str(actor["kind"]),
            "actor_id": str(actor["id"]),
            "subject_kind": str(body["subject_kind"]),
            "subject_id": str(body["subject_id"]),
            "owner_id": body.get("owner_id"),
            "function_id": body.get("function_id"),
            "correlation_id": body.get("correlation_id"),
            "data": body["data"],
        }
    except (KeyError, TypeError, ValueError):
        return {
            "schema": 0,
            "occurred_at": dt.datetime(1970, 1, 1),  # noqa: DTZ001 - naive UTC, as 0003 stored it
            "actor_kind": "",
            "actor_id": "",
            "subject_kind": "",
            "subject_id": "",
            "owner_id": None,
            "function_id": None,
            "correlation_id": None,
            "data": {"unreadable": document},
        }


def downgrade() -> None:
    types: dict[str, sa.types.TypeEngine[Any]] = {
        "schema": sa.Integer(),
        "occurred_at": sa.DateTime(),
        "actor_kind": sa.String(length=16),
        "actor_id": sa.String(length=200),
        "subject_kind": sa.String(length=32),
        "subject_id": sa.String(length=200),
        "owner_id": sa.String(length=40),
        "function_id": sa.String(length=40),
        "correlation_id": sa.String(length=64),
        "data": sa.JSON(),
    }
    optional = {"owner_id", "function_id", "correlation_id"}
    with op.batch_alter_table("audit_events") as batch:
        for name in _DERIVED:
            batch.add_column(sa.Column(name, types[name], nullable=True))
    connection = op.get_bind()
    source = sa.table("audit_events", sa.column("seq"), sa.column("record"))
    target = sa.table("audit_events", sa.column("seq"), *(sa.column(name, types[name]) for name in _DERIVED))
    update = (
        target.update()
        .where(target.c.seq == sa.bindparam("s"))
        .values({name: sa.bindparam(f"v_{name}") for name in _DERIVED})
    )
    after: int | None = None
    while True:
        query = sa.select(source).order_by(source.c.seq).limit(_PAGE)
        if after is not None:
            query = query.where(source.c.seq > after)
        rows = connection.execute(query).all()
        if not rows:
            break
        values = []
        for row in rows:
            columns = _columns(row.record)
            values.append({"s": row.seq, **{f"v_{name}": columns[name] for name in _DERIVED}})
        connection.execute(update, values)
        after = rows[-1].seq
    with op.batch_alter_table("audit_events") as batch:
        for name in _DERIVED:
            if name not in optional:
                batch.alter_column(name, existing_type=types[name], nullable=False)
        batch.drop_column("record")
