"""Hot statements on the DB-API driver, inside the transaction SQLAlchemy opened, for both backends.

Through SQLAlchemy, a statement of a few rows costs more in its execution machinery (cache lookups,
parameter and result processing, postcompile) than in the database; the issuance batch runs several
per commit. So its statements, like the audit chain's (`DriverChain`), go to the driver. Values are
stored exactly as the column types in tables.py store them, so every reader reads them back
unchanged: `UtcDateTime` as naive UTC (on SQLite, the text SQLAlchemy's DATETIME writes,
"YYYY-MM-DD HH:MM:SS.ffffff", whose order is time order) and `JSON` as JSON text (encoded by msgspec,
several times faster than `json.dumps`; `json.loads` reads back the same value).
"""

from __future__ import annotations

import datetime as dt

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec

from sqlalchemy import Connection

from remit.adapters.sql.audit import driver_errors
from remit.adapters.sql.tables import naive_utc

__all__ = ["Driver", "insert_statements"]


def insert_statements(table: str, columns: Sequence[str]) -> tuple[str, str]:
    """The INSERT of `columns` into `table` in each driver's placeholder style: (SQLite, PostgreSQL)."""
    names = ", ".join(columns)
    sql = f"INSERT INTO {table} ({names}) VALUES ({{}})"  # noqa: S608 - fixed names
    return sql.format(", ".join("?" * len(columns))), sql.format(", ".join(["%s"] * len(columns)))


class Driver:
    """The DB-API connection under a SQLAlchemy `Connection`, used inside the transaction open on it."""

    __slots__ = ("postgres", "raw")

    def __init__(self, connection: Connection) -> None:
        self.raw: Any = connection.connection.driver_connection
        self.postgres = connection.dialect.name == "postgresql"

    @contextmanager
    def errors(self) -> Iterator[None]:
        """The driver's exceptions as `SqlDatabase.transaction` reports SQLAlchemy's: Conflict or Unavailable."""
        with driver_errors(
            postgres=self.postgres,
            conflict="the change conflicts with existing data",
            unavailable="the store is unavailable",
        ):
            yield

    def time(self, value: dt.datetime | None) -> dt.datetime | str | None:
        """An aware datetime as `UtcDateTime` stores it: naive UTC; on SQLite, its DATETIME text."""
        if value is None:
            return None
        naive = naive_utc(value)
        return naive if self.postgres else naive.isoformat(" ", "microseconds")

    @staticmethod
    def json(value: object) -> str:
        """A `JSON` column's value, or a JSON statement parameter, as text."""
        return msgspec.json.encode(value).decode()

    def insert(self, statements: tuple[str, str], rows: Sequence[Sequence[object]]) -> None:
        """Write rows with one executemany (on PostgreSQL, pipelined: one round trip, a prepared statement)."""
        with self.errors():
            if self.postgres:
                with self.raw.cursor() as cursor:
                    cursor.executemany(statements[1], rows)
            else:
                self.raw.executemany(statements[0], rows)
