"""Durable group commit for audit records: many callers, one writer thread, one transaction per batch.

`AuditWriter.append(event)` returns only once the transaction holding that record has committed.
Concurrent appends are queued and committed together, which turns one fsync per record into one
per batch. The queue is bounded: when it is full callers wait (back-pressure); a record is never
dropped. If the store fails, every caller in the failed batch gets `AuditUnavailable` and its record
is not acknowledged, so the action it describes is not taken. Batches chain into the same sequence
as in-transaction appends (`SqlAuditStore`), under the same chain lock. Checkpoints are signed
every `checkpoint_every` records or `checkpoint_interval`, whichever comes first.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Self

from remit.core.audit.chain import ensure_sealable, make_checkpoint
from remit.core.audit.models import AuditEvent, Checkpoint, SealedRecord
from remit.core.audit.ports import CheckpointSigner
from remit.core.clock import Clock
from remit.errors import AuditUnavailable, Conflict, RemitError

if TYPE_CHECKING:  # engine.py imports this package's stores; a runtime import would be circular
    from remit.adapters.sql.audit import SqlAuditStore
    from remit.adapters.sql.engine import SqlDatabase

__all__ = ["AuditWriter"]

_log = logging.getLogger("remit.audit")

# How often a blocked caller re-checks that the writer thread is still alive, in seconds.
_LIVENESS_POLL_SECONDS: Final = 0.5


@dataclass(slots=True, eq=False)
class _Pending:
    event: AuditEvent
    done: threading.Event = field(default_factory=threading.Event)
    record: SealedRecord | None = None
    error: RemitError | None = None

    def resolve(self, record: SealedRecord) -> None:
        self.record = record
        self.done.set()

    def fail(self, error: RemitError) -> None:
        self.error = error
        self.done.set()


_STOP: Final = object()


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
        self._queue: queue.Queue[_Pending | object] = queue.Queue(maxsize=max_pending)
        self._thread: threading.Thread | None = None
        self._accepting = False
        self._lifecycle = threading.Lock()
        self._last_checkpoint: tuple[int, dt.datetime] | None = None
        self._tick_seconds = max(0.05, min(1.0, checkpoint_interval.total_seconds() / 4))

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        with self._lifecycle:
            if self._thread is not None:
                return
            with self._database.transaction() as tx:
                latest = tx.audit.latest_checkpoint()
            # No checkpoint yet: the first comes after N records or T from now.
            self._last_checkpoint = (
                (latest.sequence, latest.created_at) if latest is not None else (0, self._clock.now())
            )
            self._accepting = True
            self._thread = threading.Thread(target=self._run, name="remit-audit-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop accepting, commit everything already queued, then end the writer thread."""
        with self._lifecycle:
            thread = self._thread
            if thread is None:
                return
            self._accepting = False
            self._queue.put(_STOP)
            thread.join()
            self._thread = None
            self._fail_queued(AuditUnavailable("the audit writer stopped"))

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def is_running(self) -> bool:
        thread = self._thread
        return self._accepting and thread is not None and thread.is_alive()

    # ------------------------------------------------------------ the caller's side

    def append(self, event: AuditEvent) -> SealedRecord:
        """Append `event`; return its sealed record once committed, or raise `AuditUnavailable`."""
        ensure_sealable(event)  # a malformed event fails its own caller, never a whole batch
        pending = _Pending(event)
        while True:
            if not self.is_running:
                raise AuditUnavailable("the audit writer is not running")
            try:
                self._queue.put(pending, timeout=_LIVENESS_POLL_SECONDS)  # full: wait, never drop
                break
            except queue.Full:
                continue
        while not pending.done.wait(_LIVENESS_POLL_SECONDS):
            thread = self._thread
            if thread is None or not thread.is_alive():
                # The writer is gone: the record may or may not have been written, but it is not
                # acknowledged, so the caller must not act on it.
                if pending.done.is_set():
                    break
                raise AuditUnavailable("the audit writer stopped")
        if pending.error is not None:
            raise pending.error
        assert pending.record is not None  # noqa: S101 - done is set only with a record or an error
        return pending.record

    # ------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self._tick_seconds)
            except queue.Empty:
                self._checkpoint_on_time()
                continue
            if first is _STOP:
                break
            batch: list[_Pending] = [first]  # type: ignore[list-item]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)  # type: ignore[arg-type]
            self._commit(batch)

    def _commit(self, batch: Sequence[_Pending]) -> None:
        try:
            records, checkpoint = self._write([p.event for p in batch])
        except Conflict:
            # A duplicate event id fails the whole statement: retry one by one so only its own
            # caller fails.
            if len(batch) > 1:
                for pending in batch:
                    self._commit([pending])
                return
            batch[0].fail(AuditUnavailable("the audit record conflicts with an existing one"))
            return
        except Exception:  # noqa: BLE001 - any store failure must reach the callers, never kill the writer
            _log.exception("audit batch of %d records failed", len(batch))
            for pending in batch:
                pending.fail(AuditUnavailable("the audit store could not write the record"))
            return
        if checkpoint is not None:
            self._last_checkpoint = (checkpoint.sequence, checkpoint.created_at)
        for pending, record in zip(batch, records, strict=True):
            pending.resolve(record)

    def _write(self, events: Sequence[AuditEvent]) -> tuple[list[SealedRecord], Checkpoint | None]:
        with self._database.transaction() as tx:
            records = tx.audit.append_many(events)
            head = records[-1]
            checkpoint = self._checkpoint_if_due(tx.audit, head.sequence, head.hash)
        return records, checkpoint

    def _checkpoint_if_due(self, store: SqlAuditStore, sequence: int, head_hash: str) -> Checkpoint | None:
        if self._signer is None:
            return None
        now = self._clock.now()
        last_sequence, last_time = self._last_checkpoint or (0, now)
        if sequence <= last_sequence:
            return None
        if sequence - last_sequence < self._checkpoint_every and now - last_time < self._checkpoint_interval:
            return None
        checkpoint = make_checkpoint(sequence, head_hash, now, self._signer)
        store.add_checkpoint(checkpoint)
        return checkpoint

    def _checkpoint_on_time(self) -> None:
        """On an idle tick: checkpoint the head if it moved (in-transaction appends too) and T has passed."""
        last = self._last_checkpoint
        if self._signer is None or (last is not None and self._clock.now() - last[1] < self._checkpoint_interval):
            return
        try:
            with self._database.transaction() as tx:
                sequence, head_hash = tx.audit.head()
                latest = tx.audit.latest_checkpoint()  # checkpoint_now() may have run on another thread
                if latest is not None and latest.sequence >= sequence:
                    return
                checkpoint = self._checkpoint_if_due(tx.audit, sequence, head_hash)
        except Exception:  # noqa: BLE001 - a failed checkpoint is retried on the next tick
            _log.exception("audit checkpoint failed")
            return
        if checkpoint is not None:
            self._last_checkpoint = (checkpoint.sequence, checkpoint.created_at)

    def checkpoint_now(self) -> Checkpoint | None:
        """Sign a checkpoint of the current head now, if it moved since the last one."""
        if self._signer is None:
            return None
        with self._database.transaction() as tx:
            sequence, head_hash = tx.audit.head()
            latest = tx.audit.latest_checkpoint()
            if sequence == 0 or (latest is not None and latest.sequence >= sequence):
                return None
            checkpoint = make_checkpoint(sequence, head_hash, self._clock.now(), self._signer)
            tx.audit.add_checkpoint(checkpoint)
        self._last_checkpoint = (checkpoint.sequence, checkpoint.created_at)
        return checkpoint

    def _fail_queued(self, error: RemitError) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Pending):
                item.fail(error)
