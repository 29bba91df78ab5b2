"""The SQLite engine: WAL, foreign keys on, and the configured sync level on every connection."""

from __future__ import annotations

from pathlib import Path

import pytest

from remit.adapters.sql.engine import SqlDatabase
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
