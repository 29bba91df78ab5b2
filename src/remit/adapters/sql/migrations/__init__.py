"""Alembic revisions of the schema in `remit.adapters.sql.tables`."""
