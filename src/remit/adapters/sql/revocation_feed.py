"""Keeps a process's in-memory revocation index in step with the revocation log in the database.

Two paths feed it: `refresh()` right after this process commits a revocation (so its own
verifications see it at once), and a background thread for revocations other replicas commit. On
PostgreSQL that thread LISTENs on the channel every revocation NOTIFYs at commit, so other replicas
apply it within milliseconds; it still refreshes every `interval_seconds` when nothing arrives (the
fallback, and what keeps `is_current` true). On SQLite (one host) it polls. A refresh reads only
rows above the index's watermark through the primary key, so an idle one costs one indexed query.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg

from sqlalchemy.exc import SQLAlchemyError

from remit.adapters.sql.engine import SqlDatabase
from remit.adapters.sql.tasks import REVOCATION_CHANNEL
from remit.core.clock import Clock
from remit.core.credentials.revocation_index import RevocationIndex
from remit.errors import Unavailable

__all__ = ["RevocationFeed"]

_log = logging.getLogger(__name__)

# How long the listener waits for a notification before checking whether it should stop.
_LISTEN_SLICE_SECONDS = 0.25


class RevocationFeed:
    """Pulls new revocation entries into the index, on demand and every `interval_seconds`."""

    def __init__(
        self, database: SqlDatabase, index: RevocationIndex, *, clock: Clock, max_staleness_seconds: float = 5.0
    ) -> None:
        self._database = database
        self._index = index
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refresh_lock = threading.Lock()
        self._max_staleness = max_staleness_seconds
        self._last_success: float | None = None
        self.healthy = True

    def is_current(self) -> bool:
        """True when the index caught up with the store recently enough to be trusted (C24)."""
        last = self._last_success
        return last is not None and time.monotonic() - last <= self._max_staleness

    def refresh(self) -> int:
        """Apply every entry above the watermark; returns how many were new."""
        with self._refresh_lock:
            try:
                with self._database.reading() as tx:
                    entries = tx.revocations.since(self._index.watermark)
            except Unavailable:
                self.healthy = False
                raise
            self.healthy = True
            applied = self._index.apply(entries, now=self._clock.now())
            self._last_success = time.monotonic()
            return applied

    def start(self, *, interval_seconds: float = 0.5) -> None:
        """Start the background poller (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval_seconds,), name="remit-revocation-feed", daemon=True
        )
        self._thread.start()

    def _run(self, interval_seconds: float) -> None:
        if self._database.backend == "postgresql":
            self._listen(interval_seconds)
            return
        while not self._stop.wait(interval_seconds):
            self._refresh_or_warn()

    def _refresh_or_warn(self) -> None:
        try:
            self.refresh()
        except Unavailable:
            _log.warning("revocation feed: store unavailable; decisions fail closed until it returns")

    def _listen(self, interval_seconds: float) -> None:
        """LISTEN on a connection of its own; refresh on each notification, and at least every interval."""
        while not self._stop.is_set():
            try:
                raw = self._database.engine.raw_connection()
            except (SQLAlchemyError, psycopg.Error):
                _log.warning("revocation feed: cannot connect to listen; polling until it can")
                self._refresh_or_warn()
                self._stop.wait(interval_seconds)
                continue
            try:
                connection = raw.driver_connection
                if not isinstance(connection, psycopg.Connection):
                    msg = "the PostgreSQL driver is not psycopg"
                    raise TypeError(msg)
                connection.rollback()
                connection.autocommit = True
                connection.execute(f"LISTEN {REVOCATION_CHANNEL}")
                self._refresh_or_warn()  # whatever was committed before the LISTEN took effect
                last = time.monotonic()
                while not self._stop.is_set():
                    # Short waits, so stop() is prompt; refresh on a notification, or once the interval passed.
                    notified = any(True for _ in connection.notifies(timeout=_LISTEN_SLICE_SECONDS, stop_after=1))
                    if notified or time.monotonic() - last >= interval_seconds:
                        self._refresh_or_warn()
                        last = time.monotonic()
            except (psycopg.Error, SQLAlchemyError):
                _log.warning("revocation feed: the listening connection failed; reconnecting")
                self._stop.wait(min(interval_seconds, 1.0))
            finally:
                raw.invalidate()  # never hand a LISTENing connection back to the pool

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
