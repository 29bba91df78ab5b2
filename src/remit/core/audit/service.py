"""The audit log service: append, keyed hashes of sensitive values, paged reads, checkpoints and verification."""

from __future__ import annotations

import hashlib
import hmac
import json

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from remit.core.audit.chain import ChainVerifier, checkpoint_to_json, make_checkpoint
from remit.core.audit.models import AuditEvent, Checkpoint, SealedRecord, UnreadableRecord, VerificationReport
from remit.core.audit.ports import AuditAppender, AuditLedger, CheckpointSigner
from remit.core.clock import Clock
from remit.errors import InvalidRequest

__all__ = ["AuditLog", "AuditPage"]

_MAX_PAGE = 5000
_MIN_HMAC_KEY_BYTES = 32
_LOWEST_SEQUENCE = -(2**63)


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of records in sequence order; pass `next_after` as `after` for the next page."""

    records: tuple[SealedRecord | UnreadableRecord, ...]
    next_after: int | None


class AuditLog:
    """Appends through the durable appender, reads the ledger, signs checkpoints, verifies the whole chain."""

    def __init__(
        self,
        *,
        appender: AuditAppender,
        ledger: AuditLedger,
        clock: Clock,
        hmac_key: bytes,
        signer: CheckpointSigner | None = None,
    ) -> None:
        if len(hmac_key) < _MIN_HMAC_KEY_BYTES:
            msg = "the audit HMAC key must be at least 32 bytes"
            raise InvalidRequest(msg, field="audit.hmac_key")
        self._appender = appender
        self._ledger = ledger
        self._clock = clock
        self._hmac_key = hmac_key
        self._signer = signer

    def append(self, event: AuditEvent) -> SealedRecord:
        """Append durably; raises `AuditUnavailable` when the record could not be committed."""
        return self._appender.append(event)

    def hmac_of(self, value: str) -> str:
        """HMAC-SHA256 of a sensitive value (e.g. a credential `jti`) as hex: correlates, never reveals."""
        return hmac.new(self._hmac_key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    # ------------------------------------------------------------ reading

    def page(
        self,
        *,
        after: int = 0,
        limit: int = 100,
        task_id: str | None = None,
        agent_id: str | None = None,
        types: Sequence[str] = (),
    ) -> AuditPage:
        if not 1 <= limit <= _MAX_PAGE:
            msg = f"limit must be between 1 and {_MAX_PAGE}"
            raise InvalidRequest(msg, field="limit")
        if after < 0:
            msg = "after must not be negative"
            raise InvalidRequest(msg, field="after")
        records = tuple(self._ledger.read(after=after, limit=limit, task_id=task_id, agent_id=agent_id, types=types))
        next_after = records[-1].sequence if len(records) == limit else None
        return AuditPage(records=records, next_after=next_after)

    def records(
        self,
        *,
        task_id: str | None = None,
        agent_id: str | None = None,
        types: Sequence[str] = (),
        page_size: int = 1000,
    ) -> Iterator[SealedRecord | UnreadableRecord]:
        """Every matching record, in sequence order, fetched a page at a time."""
        after: int | None = 0
        while after is not None:
            page = self.page(after=after, limit=page_size, task_id=task_id, agent_id=agent_id, types=types)
            yield from page.records
            after = page.next_after

    # ------------------------------------------------------------ checkpoints and verification

    def checkpoint(self) -> Checkpoint | None:
        """Sign a checkpoint of the committed head now, unless the head is already checkpointed."""
        if self._signer is None:
            msg = "no audit signing key is configured"
            raise InvalidRequest(msg, field="audit.key")
        sequence, head_hash = self._ledger.head()
        existing = self._ledger.checkpoints()
        if sequence == 0 or (existing and existing[-1].sequence >= sequence):
            return None
        checkpoint = make_checkpoint(sequence, head_hash, self._clock.now(), self._signer)
        self._ledger.add_checkpoint(checkpoint)
        return checkpoint

    def export_checkpoints(self) -> str:
        """Every checkpoint as a JSON array, for anchoring outside this database."""
        return json.dumps([checkpoint_to_json(c) for c in self._ledger.checkpoints()], indent=2, sort_keys=True)

    def verify(self, *, page_size: int = 5000, checkpoints: Sequence[Checkpoint] | None = None) -> VerificationReport:
        """Verify the whole log, streaming it in pages, against the stored (or the given, exported) checkpoints."""
        verifier = ChainVerifier(self._ledger.checkpoints() if checkpoints is None else checkpoints, self._signer)
        # Start below zero: a row moved to a sequence <= 0 must be seen (and reported), not skipped.
        after = _LOWEST_SEQUENCE
        while True:
            page = self._ledger.stored(after=after, limit=page_size)
            if not page or not verifier.feed_stored(page):
                break
            after = page[-1].sequence
            if len(page) < page_size:
                break
        return verifier.finish()
