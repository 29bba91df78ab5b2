"""Migrations: they build exactly the schema in tables.py, on every backend, and upgrade is idempotent."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from remit.adapters.sql.engine import SqlDatabase
from remit.adapters.sql.migrate import current_revision, head_revision, upgrade
from remit.adapters.sql.tables import metadata


def test_migrated_schema_matches_the_table_definitions(database: SqlDatabase) -> None:
    """Alembic finds no difference between the migrated database and remit.adapters.sql.tables."""
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_upgrade_is_idempotent_and_reaches_head(database: SqlDatabase) -> None:
    """Running `db upgrade` on a current database changes nothing and leaves it at head."""
    upgrade(database.engine)
    assert current_revision(database.engine) == head_revision()
