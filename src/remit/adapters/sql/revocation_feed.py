"""Keeps a process's in-memory revocation index in step with the revocation log in the database.

Two paths feed it: `refresh()` right after this process commits a revocation (so its own
verifications see it at once), and a background poll for revocations other replicas commit. On
PostgreSQL a `ChangeListener` (notify.py) also calls `refresh()` as soon as another replica's
revocation commits, so the poll is only the fallback (and what keeps `is_current` true). A refresh reads only
rows above the index's watermark through the primary key, so an idle one costs one indexed query.
"""

from __future__ import annotations

import logging
import threading
import time

from remit.adapters.sql.engine import SqlDatabase
from remit.core.clock import Clock
from remit.core.credentials.revocation_index import RevocationIndex
from remit.errors import Unavailable

__all__ = ["RevocationFeed"]

_log = logging.getLogger(__name__)


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
        while not self._stop.wait(interval_seconds):
            try:
                self.refresh()
            except Unavailable:
                _log.warning("revocation feed: store unavailable; decisions fail closed until it returns")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
