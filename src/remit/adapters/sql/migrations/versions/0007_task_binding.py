"""A task's DPoP binding on its own row (`tasks.dpop_jkt`, ADR 0016), so a kept task carries it.

The binding was read from the task's first bound credential for its audience on every re-issue. The
upgrade copies that very value onto each task; tasks without a bound credential stay unbound (NULL).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The first bound credential for the task's own audience, as the re-issue decision chose it before.
_BACKFILL = """
UPDATE tasks SET dpop_jkt = (
    SELECT c.cnf_jkt FROM credentials c
    WHERE c.task_id = tasks.id AND c.audience = tasks.audience AND c.cnf_jkt IS NOT NULL
    ORDER BY c.issued_at, c.jti
    LIMIT 1
)
"""


def upgrade() -> None:
    op.add_column("tasks", sa.Column("dpop_jkt", sa.String(length=128), nullable=True))
    op.execute(_BACKFILL)


def downgrade() -> None:
    # Not a batch copy of the table: on SQLite that drops and recreates `tasks`, which the credentials'
    # foreign keys refuse. SQLite has dropped a column in place since 3.35.
    op.execute("ALTER TABLE tasks DROP COLUMN dpop_jkt")
