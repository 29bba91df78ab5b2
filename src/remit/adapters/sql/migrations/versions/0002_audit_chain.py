"""Hash-chain the audit trail: `prev_hash` and `hash` on every event, and the signed checkpoints table.

Existing events are renumbered 1..n in their stored order and sealed into the chain (ADR 0007).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa

from alembic import op

from remit.core.audit.chain import seal
from remit.core.audit.models import GENESIS_HASH, ActorKind, AuditActor, AuditEvent

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _seal_existing_events() -> None:
    connection = op.get_bind()
    events = sa.table(
        "audit_events",
        *(
            sa.column(name)
            for name in (
                "seq",
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
        ),
    )
    rows = connection.execute(sa.select(events).order_by(events.c.seq)).all()
    previous = GENESIS_HASH
    # Ascending renumbering never collides: each new number is at most the old one.
    for sequence, row in enumerate(rows, start=1):
        occurred_at = row.occurred_at
        if isinstance(occurred_at, str):
            occurred_at = dt.datetime.fromisoformat(occurred_at)
        data = json.loads(row.data) if isinstance(row.data, str) else row.data
        event = AuditEvent(
            id=row.id,
            type=row.type,
            occurred_at=occurred_at.replace(tzinfo=dt.UTC),
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
        record = seal(previous, sequence, event)
        connection.execute(
            events.update()
            .where(events.c.seq == row.seq)
            .values(seq=sequence, prev_hash=record.prev_hash, hash=record.hash)
        )
        previous = record.hash


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    _seal_existing_events()
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("key_id", sa.String(length=128), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
