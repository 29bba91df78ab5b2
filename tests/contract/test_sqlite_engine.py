"""The SQLite engine: WAL, foreign keys on, and the configured sync level on every connection."""

from __future__ import annotations

from pathlib import Path

import pytest

from remit.adapters.sql.engine import SqlDatabase
from remit.adapters.sql.migrate import upgrade
from remit.errors import InvalidRequest


@pytest.mark.parametrize(("level", "expected"), [("FULL", 2), ("NORMAL", 1)])
def test_pragmas_apply_to_every_connection(tmp_path: Path, level: str, expected: int) -> None:
    """WAL journal, enforced foreign keys, and `synchronous` as configured (FULL = fsync per commit)."""
    database = SqlDatabase.connect(f"sqlite:///{tmp_path / 'x.db'}", sqlite_synchronous=level)
    try:
        with database.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == expected
    finally:
        database.dispose()


def test_unknown_sync_level_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest):
        SqlDatabase.connect(f"sqlite:///{tmp_path / 'x.db'}", sqlite_synchronous="OFF")


def test_unsupported_backend_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        SqlDatabase.connect("mysql://root@127.0.0.1/test")


def test_a_wal_checkpoint_runs_beside_readers_and_writers(tmp_path: Path) -> None:
    """The server's background checkpoint works while a reader holds a snapshot, and loses nothing."""
    database = SqlDatabase.connect(f"sqlite:///{tmp_path / 'remit.db'}")
    try:
        upgrade(database.engine)
        with database.engine.connect() as reader:
            reader.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar()
            database.checkpoint()  # PASSIVE: never waits for the reader, never fails because of it
        database.checkpoint()
        with database.engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
    finally:
        database.dispose()
