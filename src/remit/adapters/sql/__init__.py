"""SQL storage over SQLAlchemy Core: SQLite (embedded default) and PostgreSQL."""
