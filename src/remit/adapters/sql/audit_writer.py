"""Durable group commit for audit records: many callers, one writer thread, one transaction per batch.

`AuditWriter.append(event)` returns only once the transaction holding that record has committed.
Concurrent appends are collected into batches and committed together, which turns one fsync per
record into one per batch. Pending records are bounded: when `max_pending` are queued or being
written, callers wait (back-pressure); a record is never dropped. If the store fails, every caller in
the failed batch gets `AuditUnavailable` and its record is not acknowledged, so the action it
describes is not taken. Batches chain into the same sequence as in-transaction appends
(`SqlAuditStore`), under the same chain lock. Checkpoints are signed every `checkpoint_every`
records or `checkpoint_interval`, whichever comes first.

Where the time goes: each caller canonicalises its own event (`prepare`) before it queues, so that
work overlaps the writer's commit instead of being done under the chain lock; the writer only
splices in sequence numbers, hashes and writes. A caller waits on a lock of its own that the writer
releases, rather than on a shared condition that would wake every waiter to contend for one lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
import time

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Self

from sqlalchemy.exc import SQLAlchemyError

from remit.adapters.sql.audit import DriverChain, driver_errors
from remit.core.audit.chain import PreparedRecord, make_checkpoint, prepare
from remit.core.audit.models import SealedRecord
from remit.core.audit.ports import CheckpointSigner
from remit.core.clock import Clock
from remit.core.futures import settle_from_thread
from remit.errors import AuditUnavailable, Conflict, Unavailable

if TYPE_CHECKING:  # engine.py imports this package's stores; a runtime import would be circular
    from sqlalchemy import PoolProxiedConnection

    from remit.adapters.sql.engine import SqlDatabase
    from remit.core.audit.models import AuditEvent

__all__ = ["AuditWriter"]

_log = logging.getLogger("remit.audit")

# How often a blocked caller re-checks that the writer thread is still alive, in seconds.
_LIVENESS_POLL_SECONDS: Final = 0.5
_CONFLICT: Final = "the audit record conflicts with an existing one"
_FAILED: Final = "the audit store could not write the record"
_STOPPED: Final = "the audit writer stopped"
# The longest a batch waits for more callers to join it, in seconds (see `AuditWriter._gather`).
_MAX_GATHER_SECONDS: Final = 0.002


def _outcome(result: SealedRecord | str) -> SealedRecord | AuditUnavailable:
    return AuditUnavailable(result) if isinstance(result, str) else result


class _Batch:
    """Records committed together; `results[i]` is the sealed record, or why it was not written.

    Two kinds of caller wait on a batch: threads blocked in `append`, each on a lock of its own
    (`threads`, in the order they queued), and event-loop callers of `submit`, each on a future.
    """

    __slots__ = ("futures", "prepared", "results", "threads")

    def __init__(self) -> None:
        self.prepared: list[PreparedRecord] = []
        self.threads: list[threading.Lock] = []
        self.futures: list[tuple[asyncio.Future[SealedRecord], int]] = []
        self.results: list[SealedRecord | str] = []

    def settle(self, results: Sequence[SealedRecord | str]) -> None:
        """Publish the results: one call into each waiting event loop, and wake the first thread (`pass_on`)."""
        self.results = list(results)
        settle_from_thread((future, _outcome(self.results[index])) for future, index in self.futures)
        if self.threads:
            self.threads[0].release()

    def pass_on(self, turn: int) -> None:
        # Waking threads one after another keeps one woken thread at a time competing for the GIL,
        # instead of a herd that would also hold up the writer's next commit.
        if turn + 1 < len(self.threads):
            self.threads[turn + 1].release()


class AuditWriter:
    """Appends audit events durably with group commit; thread-safe; start() before use, stop() after."""

    def __init__(  # noqa: PLR0913 - each limit is a deliberate, documented knob
        self,
        database: SqlDatabase,
        *,
        clock: Clock,
        signer: CheckpointSigner | None = None,
        checkpoint_every: int = 10_000,
        checkpoint_interval: dt.timedelta = dt.timedelta(minutes=1),
        max_batch: int = 1000,
        max_pending: int = 10_000,
    ) -> None:
        if max_batch < 1 or max_pending < 1 or checkpoint_every < 1:
            msg = "audit writer limits must be positive"
            raise ValueError(msg)
        self._database = database
        self._clock = clock
        self._signer = signer
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval = checkpoint_interval
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._mutex = threading.Lock()
        self._work = threading.Condition(self._mutex)  # the writer waits here for records
        self._room = threading.Condition(self._mutex)  # callers wait here while max_pending are pending
        self._filling = _Batch()
        self._full: deque[_Batch] = deque()
        self._pending = 0
        self._writer_idle = False
        # Group-commit gathering (see `_gather`): how many records to wait for, and for how long at most.
        self._rejoin = 0
        self._rejoin_wait = 0.0
        self._wanted = 0
        self._thread: threading.Thread | None = None
        self._connection: PoolProxiedConnection | None = None  # the writer thread's own
        self._accepting = False
        self._lifecycle = threading.Lock()
        # (sequence, time) of the latest checkpoint; None until read from the store by the writer.
        self._last_checkpoint: tuple[int, dt.datetime] | None = None
        self._started_at = clock.now()
        self._tick_seconds = max(0.05, min(1.0, checkpoint_interval.total_seconds() / 4))
        self._committed = (0, 0)  # (batches, records) committed since construction

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the writer thread. Touches no store: a store that is down fails appends, not start-up."""
        with self._lifecycle:
            if self._thread is not None:
                return
            self._started_at = self._clock.now()
            with self._mutex:
                self._accepting = True
            self._thread = threading.Thread(target=self._run, name="remit-audit-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop accepting, commit everything already queued, then end the writer thread."""
        with self._lifecycle:
            thread = self._thread
            if thread is None:
                return
            with self._mutex:
                self._accepting = False
                self._work.notify()
                self._room.notify_all()
            thread.join()
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def pending(self) -> int:
        """Records queued or being written, never more than `max_pending`."""
        return self._pending

    @property
    def committed(self) -> tuple[int, int]:
        """(batches, records) committed so far: records / batches is the mean group size."""
        return self._committed

    @property
    def is_running(self) -> bool:
        thread = self._thread
        return self._accepting and thread is not None and thread.is_alive()

    # ------------------------------------------------------------ the caller's side

    def append(self, event: AuditEvent) -> SealedRecord:
        """Append `event`; return its sealed record once committed, or raise `AuditUnavailable`."""
        prepared = prepare(event)  # a malformed event fails its own caller, never a whole batch
        waiter = threading.Lock()
        waiter.acquire()
        placed = self._enqueue(prepared, waiter)
        assert placed is not None  # noqa: S101 - a blocking enqueue always places the record
        return self._await(*placed, waiter)

    def submit(self, event: AuditEvent) -> asyncio.Future[SealedRecord] | None:
        """Queue `event` without blocking, from a running event loop: a future settled once it is committed.

        The future is settled on its own loop, with every other future of the same batch in one
        call. Returns None when the queue is full: the caller must then `append` from a worker
        thread, which waits for room (back-pressure, never a drop). Raises `AuditUnavailable` when
        the writer is not running.
        """
        prepared = prepare(event)
        future: asyncio.Future[SealedRecord] = asyncio.get_running_loop().create_future()
        placed = self._enqueue(prepared, future, block=False)
        return None if placed is None else future

    def _enqueue(
        self, prepared: PreparedRecord, waiter: threading.Lock | asyncio.Future[SealedRecord], *, block: bool = True
    ) -> tuple[_Batch, int, int] | None:
        """Queue one record, waiting while `max_pending` are pending: its batch, its index and its turn.

        With `block=False`, a full queue returns None instead of waiting.
        """
        with self._mutex:
            while True:
                if not self.is_running:
                    raise AuditUnavailable("the audit writer is not running")
                if self._pending < self._max_pending:
                    break
                if not block:
                    return None
                self._room.wait(_LIVENESS_POLL_SECONDS)  # full: wait, never drop
            batch = self._filling
            overflowed = len(batch.prepared) >= self._max_batch
            if overflowed:
                self._full.append(batch)
                batch = self._filling = _Batch()
            index = len(batch.prepared)
            batch.prepared.append(prepared)
            turn = -1
            if isinstance(waiter, asyncio.Future):
                batch.futures.append((waiter, index))
            else:
                turn = len(batch.threads)
                batch.threads.append(waiter)
            self._pending += 1
            if self._writer_idle or overflowed or index + 1 == self._wanted:
                self._writer_idle = False
                self._work.notify()
        return batch, index, turn

    def _await(self, batch: _Batch, index: int, turn: int, waiter: threading.Lock) -> SealedRecord:
        """Wait for the batch holding the record to settle (or the writer to die), then pass the turn on."""
        while not waiter.acquire(timeout=_LIVENESS_POLL_SECONDS):
            if batch.results:
                break  # settled; the caller before us is just slow to pass the turn on
            thread = self._thread
            if thread is None or not thread.is_alive():
                if batch.results:
                    break
                # The writer is gone: the record may or may not have been written, but it is not
                # acknowledged, so the caller must not act on it.
                raise AuditUnavailable(_STOPPED)
        batch.pass_on(turn)
        result = batch.results[index]
        if isinstance(result, str):
            raise AuditUnavailable(result)
        return result

    # ------------------------------------------------------------ the writer thread

    def _next_batch(self) -> _Batch | None:
        """The next batch to commit, waiting for one; None once stopped and drained."""
        with self._mutex:
            while not self._full and not self._filling.prepared:
                if not self._accepting:
                    return None
                self._writer_idle = True
                notified = self._work.wait(self._tick_seconds)
                self._writer_idle = False
                if not notified and not self._full and not self._filling.prepared:
                    self._mutex.release()
                    try:
                        self._checkpoint_if_due()
                    finally:
                        self._mutex.acquire()
            self._gather()
            if self._full:
                return self._full.popleft()
            batch, self._filling = self._filling, _Batch()
            return batch

    def _gather(self) -> None:
        """Give the callers the last commit released a moment to queue again, so they share the next commit.

        Without it, callers settle into two cohorts that alternate: those who queued during a commit
        go in the next batch at once, and those it released queue during that one, so each commit
        carries about half the callers. The wait ends as soon as everyone is back, and never lasts
        more than half the last commit. Called holding the mutex.
        """
        wanted = self._rejoin
        if self._full or len(self._filling.prepared) >= wanted or not self._accepting:
            return
        deadline = time.monotonic() + self._rejoin_wait
        self._wanted = wanted
        try:
            while len(self._filling.prepared) < wanted and not self._full and self._accepting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._work.wait(remaining)
        finally:
            self._wanted = 0

    def _run(self) -> None:
        in_flight: _Batch | None = None
        try:
            while (batch := self._next_batch()) is not None:
                in_flight = batch
                began = time.monotonic()
                try:
                    results = self._commit(batch.prepared)
                finally:
                    with self._mutex:
                        self._pending -= len(batch.prepared)
                        self._room.notify_all()
                        # Next time, wait (briefly) for these callers and those already queued.
                        self._rejoin = min(self._max_batch, len(batch.prepared) + len(self._filling.prepared))
                        self._rejoin_wait = min(_MAX_GATHER_SECONDS, (time.monotonic() - began) / 2)
                batch.settle(results)
                in_flight = None
        finally:
            self._release_connection()
            # Whatever ended this thread, nobody may wait forever: fail what is still queued.
            with self._mutex:
                self._accepting = False
                left = [*([in_flight] if in_flight is not None else []), *self._full, self._filling]
                self._full.clear()
                self._filling = _Batch()
                self._pending = 0
                self._room.notify_all()
            for batch in left:
                batch.settle([_STOPPED] * len(batch.prepared))

    def _commit(self, prepared: Sequence[PreparedRecord]) -> Sequence[SealedRecord | str]:
        try:
            records = self._write(prepared)
        except Conflict:
            # A duplicate event id fails the whole statement: retry one by one so only its own
            # caller fails.
            if len(prepared) > 1:
                return [result for one in prepared for result in self._commit([one])]
            return [_CONFLICT]
        except Exception:  # noqa: BLE001 - any store failure must reach the callers, never kill the writer
            _log.exception("audit batch of %d records failed", len(prepared))
            return [_FAILED] * len(prepared)
        batches, total = self._committed
        self._committed = (batches + 1, total + len(records))
        self._checkpoint_if_due(records[-1].sequence)
        return records

    def _write(self, prepared: Sequence[PreparedRecord]) -> list[SealedRecord]:
        """One transaction on the writer's own connection, driven through the DB-API driver directly."""
        postgres = self._database.backend == "postgresql"
        with self._database.serialized():
            connection = self._connection
            if connection is None:
                try:
                    connection = self._connection = self._database.engine.raw_connection()
                except SQLAlchemyError as exc:
                    msg = "the audit store is unavailable"
                    raise Unavailable(msg) from exc
            driver = connection.driver_connection
            assert driver is not None  # noqa: S101 - a pooled connection that is checked out has one
            try:
                with driver_errors(postgres=postgres):
                    if not postgres:
                        driver.execute("BEGIN IMMEDIATE")
                records = DriverChain(driver, postgres=postgres).append_prepared(prepared)
                with driver_errors(postgres=postgres):
                    driver.commit()
            except Conflict:
                connection.rollback()
                raise
            except BaseException:
                # Whatever broke, start the next batch on a fresh connection.
                self._connection = None
                with contextlib.suppress(Exception):
                    connection.invalidate()
                raise
        return records

    def _release_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    # ------------------------------------------------------------ checkpoints

    def _checkpoint_if_due(self, sequence: int | None = None) -> None:
        """Sign a checkpoint of the head if N records (`sequence` moved that far) or T have passed.

        Runs in its own short transaction after a batch has committed (and on idle ticks, which
        also covers records appended inside other transactions); a failure is logged and retried
        later, never reported to callers whose records are already durable.
        """
        if self._signer is None:
            return
        now = self._clock.now()
        last = self._last_checkpoint
        recent = last is not None and now - last[1] < self._checkpoint_interval
        if recent and (sequence is None or last is None or sequence - last[0] < self._checkpoint_every):
            return
        try:
            with self._database.transaction() as tx:
                head, head_hash = tx.audit.head()
                latest = tx.audit.latest_checkpoint()  # another replica or `remit audit checkpoint` may have signed
                if latest is not None:
                    last = (latest.sequence, latest.created_at)
                elif last is None:
                    last = (0, self._started_at)
                self._last_checkpoint = last
                if head <= last[0]:
                    return
                if head - last[0] < self._checkpoint_every and now - last[1] < self._checkpoint_interval:
                    return
                checkpoint = make_checkpoint(head, head_hash, now, self._signer)
                tx.audit.add_checkpoint(checkpoint)
        except Exception:  # noqa: BLE001 - a failed checkpoint is retried after the next batch or tick
            _log.exception("audit checkpoint failed")
            return
        self._last_checkpoint = (checkpoint.sequence, checkpoint.created_at)
