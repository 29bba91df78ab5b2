"""Alembic environment: runs revisions on the connection `remit.adapters.sql.migrate` hands in."""

from __future__ import annotations

from alembic import context

from remit.adapters.sql.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
