"""Ports of the audit trail: appending (in a transaction or durably on its own), reading, signing, exporting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from remit.core.audit.models import AuditEvent, Checkpoint, SealedRecord, StoredRecord, UnreadableRecord

__all__ = ["AuditAppender", "AuditLedger", "AuditSink", "AuditStore", "CheckpointSigner"]


class AuditStore(Protocol):
    """Appends audit events inside the caller's transaction: durable when that transaction commits.

    The record is chained (sequence and previous hash assigned) under the chain lock, so it shares
    the one sequence with every other writer. Raises `AuditUnavailable` (or the store's
    `Unavailable`) when the record cannot be written; the caller's action then fails too.
    """

    def append(self, event: AuditEvent) -> object: ...


class AuditAppender(Protocol):
    """Appends one event on its own and returns only once that record is durable.

    Raises `AuditUnavailable` when it cannot: the record is then not acknowledged, and the caller
    must not take the action it describes.
    """

    def append(self, event: AuditEvent) -> SealedRecord: ...


class AuditLedger(Protocol):
    """Reads the stored chain in sequence order and keeps its signed checkpoints."""

    def read(
        self,
        *,
        after: int = 0,
        limit: int = 1000,
        task_id: str | None = None,
        agent_id: str | None = None,
        types: Sequence[str] = (),
    ) -> Sequence[SealedRecord | UnreadableRecord]:
        """Records with sequence > `after`, ascending, at most `limit`, matching every filter given."""
        ...

    def stored(self, *, after: int, limit: int) -> Sequence[StoredRecord]:
        """Stored rows with sequence > `after` (which may be negative), ascending, at most `limit`, undecoded."""
        ...

    def head(self) -> tuple[int, str]:
        """The committed head: (sequence, hash), or (0, GENESIS_HASH) for an empty log."""
        ...

    def checkpoints(self) -> Sequence[Checkpoint]:
        """Every stored checkpoint, ascending by sequence."""
        ...

    def add_checkpoint(self, checkpoint: Checkpoint) -> None: ...


class CheckpointSigner(Protocol):
    """Signs and verifies checkpoint bytes with the audit key (never the credential signing key)."""

    @property
    def key_id(self) -> str: ...

    def sign(self, payload: bytes) -> str:
        """A detached signature over `payload`, as text."""
        ...

    def verify(self, payload: bytes, signature: str) -> bool:
        """Whether `signature` is this key's signature over `payload`; never raises on bad input."""
        ...


class AuditSink(Protocol):
    """Receives committed records for export (OCSF JSON Lines to a file or stdout)."""

    def emit(self, record: SealedRecord) -> None: ...
