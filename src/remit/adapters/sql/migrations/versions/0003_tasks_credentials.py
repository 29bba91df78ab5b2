"""Tasks, the revocation log, issued credentials and single-use evidence.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence_uses",
        sa.Column("namespace", sa.String(length=64), nullable=False),
        sa.Column("jti", sa.String(length=256), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("namespace", "jti", name=op.f("pk_evidence_uses")),
    )
    op.create_index(op.f("ix_evidence_uses_expires_at"), "evidence_uses", ["expires_at"], unique=False)
    op.create_table(
        "revocations",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_revocations")),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("owner_id", sa.String(length=40), nullable=False),
        sa.Column("function_id", sa.String(length=40), nullable=False),
        sa.Column("workflow_id", sa.String(length=40), nullable=False),
        sa.Column("workflow_ref", sa.String(length=80), nullable=False),
        sa.Column("objective", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("environment", sa.String(length=63), nullable=False),
        sa.Column("audience", sa.String(length=512), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("deadline", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("parent_id", sa.String(length=40), nullable=True),
        sa.Column("root_id", sa.String(length=40), nullable=False),
        sa.Column("lineage", sa.String(length=512), nullable=False),
        sa.Column("principal", sa.String(length=512), nullable=True),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_tasks_agent_id_agents")),
        sa.ForeignKeyConstraint(["parent_id"], ["tasks.id"], name=op.f("fk_tasks_parent_id_tasks")),
        sa.ForeignKeyConstraint(["workflow_id"], ["workflows.id"], name=op.f("fk_tasks_workflow_id_workflows")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    op.create_index("ix_tasks_agent_state", "tasks", ["agent_id", "state"], unique=False)
    op.create_index("ix_tasks_root_id", "tasks", ["root_id"], unique=False)
    op.create_index("ix_tasks_state_deadline", "tasks", ["state", "deadline"], unique=False)
    op.create_index("ix_tasks_workflow_state", "tasks", ["workflow_id", "state"], unique=False)
    op.create_table(
        "credentials",
        sa.Column("jti", sa.String(length=40), nullable=False),
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("audience", sa.String(length=512), nullable=False),
        sa.Column("kid", sa.String(length=128), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("cnf_jkt", sa.String(length=128), nullable=True),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_credentials_task_id_tasks")),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_credentials")),
    )
    op.create_index(op.f("ix_credentials_task_id"), "credentials", ["task_id"], unique=False)


def downgrade() -> None:
    op.drop_table("evidence_uses")
    op.drop_table("credentials")
    op.drop_table("revocations")
    op.drop_table("tasks")
