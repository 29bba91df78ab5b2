"""Change notification between replicas on PostgreSQL: NOTIFY inside the changing transaction, LISTEN in each replica.

A notification is delivered only when its transaction commits, and identical ones in one
transaction are coalesced. It carries no payload: the listener calls the handler of its channel,
which reads what changed from the store (the revocation log above its watermark, the policy-set
generation). Every such reader also polls on its own, so a notification lost with a dropped
connection costs at most one poll interval. SQLite (one host) needs none of this.
"""

from __future__ import annotations

import logging
import threading

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

import psycopg

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from remit.errors import RemitError

if TYPE_CHECKING:  # engine.py imports the stores that notify: a runtime import would be circular
    from remit.adapters.sql.engine import SqlDatabase

__all__ = ["POLICIES", "REVOCATIONS", "ChangeListener", "notify"]

_log = logging.getLogger(__name__)

REVOCATIONS: Final = "remit_revocations"
POLICIES: Final = "remit_policies"
_NOTIFY: Final = {channel: text(f"SELECT pg_notify('{channel}', '')") for channel in (REVOCATIONS, POLICIES)}
# How long the listener waits for a notification before checking whether it should stop.
_SLICE_SECONDS: Final = 0.25
_RECONNECT_SECONDS: Final = 1.0


def notify(connection: Connection, channel: str) -> None:
    """Tell every listening replica, when this transaction commits, that `channel` changed (PostgreSQL only)."""
    if connection.dialect.name == "postgresql":
        connection.execute(_NOTIFY[channel])


class ChangeListener:
    """LISTENs on a connection of its own and calls each channel's handler when that channel is notified."""

    def __init__(self, database: SqlDatabase, handlers: Mapping[str, Callable[[], object]]) -> None:
        self._database = database
        self._handlers = dict(handlers)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set while a LISTEN is in place (tests wait on it)

    def start(self) -> None:
        """Start listening (idempotent); a no-op unless the store is PostgreSQL."""
        if self._thread is not None or self._database.backend != "postgresql":
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="remit-change-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _handle(self, channel: str) -> None:
        try:
            self._handlers[channel]()
        except RemitError as error:
            _log.warning("change listener: handling %s failed (%s); the poll will catch up", channel, error.code)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                raw = self._database.engine.raw_connection()
            except (SQLAlchemyError, psycopg.Error):
                _log.warning("change listener: cannot connect; replicas rely on their polls until it can")
                self._stop.wait(_RECONNECT_SECONDS)
                continue
            try:
                self._listen(raw.driver_connection)
            except (SQLAlchemyError, psycopg.Error):
                _log.warning("change listener: the listening connection failed; reconnecting")
                self._stop.wait(_RECONNECT_SECONDS)
            finally:
                self.listening.clear()
                raw.invalidate()  # never hand a LISTENing connection back to the pool

    def _listen(self, connection: object) -> None:
        if not isinstance(connection, psycopg.Connection):
            msg = "the PostgreSQL driver is not psycopg"
            raise TypeError(msg)
        connection.rollback()
        connection.autocommit = True
        for channel in self._handlers:
            connection.execute(f"LISTEN {channel}")
        self.listening.set()
        for channel in self._handlers:  # whatever committed before the LISTEN took effect
            self._handle(channel)
        while not self._stop.is_set():
            for note in connection.notifies(timeout=_SLICE_SECONDS):
                if note.channel in self._handlers:
                    self._handle(note.channel)
