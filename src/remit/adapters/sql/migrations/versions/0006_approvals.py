"""Approvals: operator accounts with roles, approval requests and break-glass grants, elevations, webhook deliveries.

Revision ID: 0006
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operator_accounts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("owner_id", sa.String(length=40), nullable=True),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
        sa.Column("disabled_by", sa.String(length=200), nullable=True),
        sa.Column("disable_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_operator_accounts_name")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_operator_accounts_token_sha256")),
    )
    # One person holds at most one active account: by email and by linked owner.
    for name, column in (
        ("uq_operator_accounts_active_email", "email"),
        ("uq_operator_accounts_active_owner", "owner_id"),
    ):
        op.create_index(
            name,
            "operator_accounts",
            [column],
            unique=True,
            sqlite_where=sa.text("disabled_at IS NULL"),
            postgresql_where=sa.text("disabled_at IS NULL"),
        )
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("owner_id", sa.String(length=40), nullable=False),
        sa.Column("function_id", sa.String(length=40), nullable=False),
        sa.Column("principal", sa.String(length=512), nullable=True),
        sa.Column("objective", sa.Text(), nullable=False),
        sa.Column("tool", sa.String(length=63), nullable=False),
        sa.Column("action", sa.String(length=63), nullable=False),
        sa.Column("resource", sa.String(length=512), nullable=False),
        sa.Column("risk_class", sa.String(length=16), nullable=False),
        sa.Column("sensitivity", sa.String(length=16), nullable=True),
        sa.Column("environment", sa.String(length=63), nullable=True),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("context_sha256", sa.String(length=64), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=True),
        sa.Column("ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("approvers", sa.JSON(), nullable=False),
        sa.Column("required", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("pending_key", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("decision_id", sa.String(length=40), nullable=True),
        sa.Column("votes", sa.JSON(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("elevation_id", sa.String(length=40), nullable=True),
        sa.Column("justification", sa.Text(), nullable=True),
        sa.Column("review_state", sa.String(length=16), nullable=True),
        sa.Column("reviewed_by", sa.String(length=200), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(), nullable=True),
        sa.Column("review_notes", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_approvals_task_id_tasks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
        sa.UniqueConstraint("pending_key", name=op.f("uq_approvals_pending_key")),
    )
    op.create_index(op.f("ix_approvals_task_id"), "approvals", ["task_id"], unique=False)
    op.create_index("ix_approvals_state_expires", "approvals", ["state", "expires_at"], unique=False)
    op.create_index("ix_approvals_kind_review", "approvals", ["kind", "review_state"], unique=False)
    op.create_table(
        "elevations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("approval_id", sa.String(length=40), nullable=False),
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("owner_id", sa.String(length=40), nullable=False),
        sa.Column("function_id", sa.String(length=40), nullable=False),
        sa.Column("tool", sa.String(length=63), nullable=False),
        sa.Column("action", sa.String(length=63), nullable=False),
        sa.Column("resource", sa.String(length=512), nullable=False),
        sa.Column("uses_left", sa.Integer(), nullable=True),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("granted_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("granted_by", sa.JSON(), nullable=False),
        sa.Column("break_glass", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("context_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["approval_id"], ["approvals.id"], name=op.f("fk_elevations_approval_id_approvals")),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_elevations_task_id_tasks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_elevations")),
    )
    op.create_index("ix_elevations_call", "elevations", ["task_id", "tool", "action", "resource"], unique=False)
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery", sa.String(length=40), nullable=False),
        sa.Column("attempt", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("group_name", sa.String(length=63), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("event", sa.String(length=63), nullable=False),
        sa.Column("task_id", sa.String(length=40), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("delivered", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("delivery", "attempt", name=op.f("pk_webhook_deliveries")),
    )


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_elevations_call", table_name="elevations")
    op.drop_table("elevations")
    op.drop_index("ix_approvals_kind_review", table_name="approvals")
    op.drop_index("ix_approvals_state_expires", table_name="approvals")
    op.drop_index(op.f("ix_approvals_task_id"), table_name="approvals")
    op.drop_table("approvals")
    op.drop_index("uq_operator_accounts_active_owner", table_name="operator_accounts")
    op.drop_index("uq_operator_accounts_active_email", table_name="operator_accounts")
    op.drop_table("operator_accounts")
