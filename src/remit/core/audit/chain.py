"""The audit hash chain: canonical encoding (RFC 8785 JCS), `seal`, checkpoints and `verify`, as pure functions.

Each record's hash is `SHA-256(prev_hash || JCS(record))`, where `prev_hash` is the previous record's
hash as 32 raw bytes (`GENESIS_HASH`, 32 zero bytes, for record 1) and `record` is the event's
document with its `sequence` (see `record_document`). Checkpoints sign `JCS(checkpoint)` with the
audit key. Verification names the first record that was altered, removed, reordered or truncated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import rfc8785

from remit.core.audit.models import (
    GENESIS_HASH,
    AuditEvent,
    Checkpoint,
    Fault,
    FaultKind,
    SealedRecord,
    UnreadableRecord,
    VerificationReport,
)
from remit.core.audit.ports import CheckpointSigner
from remit.errors import InvalidRequest

__all__ = [
    "ChainVerifier",
    "canonical_json",
    "checkpoint_document",
    "checkpoint_from_json",
    "checkpoint_payload",
    "checkpoint_to_json",
    "digest",
    "ensure_sealable",
    "make_checkpoint",
    "record_document",
    "rfc3339",
    "seal",
    "verify",
]

# JCS (RFC 8785 §3.2.2.3) serialises numbers as IEEE 754 doubles: integers beyond 2**53 are refused.
_MAX_SAFE_INTEGER: Final = 2**53 - 1
_OPTIONAL_FIELDS: Final = ("task_id", "agent_id", "owner_id", "function_id", "correlation_id")


def rfc3339(moment: dt.datetime) -> str:
    """RFC 3339 UTC with microseconds, e.g. `2026-01-15T09:00:00.000000Z`; naive datetimes are refused."""
    if moment.tzinfo is None:
        msg = "audit times must be aware datetimes"
        raise InvalidRequest(msg, field="occurred_at")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _is_plain(value: object) -> bool:
    """Whether `json.dumps` renders `value` exactly as JCS would (no floats, no unsafe integers)."""
    # Iterative on purpose: this runs for every record sealed or verified.
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if not -_MAX_SAFE_INTEGER <= item <= _MAX_SAFE_INTEGER:  # type: ignore[operator]
                return False
        elif kind is dict:
            for key, child in item.items():  # type: ignore[attr-defined]
                if type(key) is not str:
                    return False
                pending.append(child)
        elif kind is list or kind is tuple:
            pending.extend(item)  # type: ignore[arg-type]
        else:
            return False
    return True


def canonical_json(value: object) -> bytes:
    """RFC 8785 (JCS) canonical UTF-8 bytes of a JSON value.

    Fast path: for ASCII documents without floats, `json.dumps` with sorted keys and no whitespace
    is byte-identical to JCS (same escapes, code-point order equals UTF-16 order in ASCII). Anything
    else (floats, non-ASCII text) goes through the `rfc8785` reference implementation. A value JCS
    cannot represent (non-string keys, NaN, integers beyond 2**53, other types) is `InvalidRequest`.
    """
    if _is_plain(value):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if text.isascii():
            return text.encode("ascii")
    try:
        return rfc8785.dumps(value)  # type: ignore[arg-type]  # non-JSON values are refused below
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
        msg = "audit data must be plain JSON (string keys, finite numbers, integers within 2**53)"
        raise InvalidRequest(msg, field="data") from exc


def record_document(sequence: int, event: AuditEvent, *, schema: int = AuditEvent.SCHEMA) -> dict[str, Any]:
    """The document a record's hash covers: every event field, its schema number and its sequence.

    Optional fields that are None are left out, so a field added later with a None default leaves
    the hashes of older records unchanged (the schema rule in `AuditEvent`).
    """
    document: dict[str, Any] = {
        "schema": schema,
        "sequence": sequence,
        "id": event.id,
        "type": event.type,
        "occurred_at": rfc3339(event.occurred_at),
        "actor": {"kind": str(event.actor.kind), "id": event.actor.id},
        "subject_kind": event.subject_kind,
        "subject_id": event.subject_id,
        "data": event.data,
    }
    for name in _OPTIONAL_FIELDS:
        value = getattr(event, name)
        if value is not None:
            document[name] = value
    return document


def digest(prev_hash: str, canonical: bytes) -> str:
    """`SHA-256(prev_hash || canonical)` as lowercase hex; `prev_hash` enters as its 32 raw bytes."""
    try:
        previous = bytes.fromhex(prev_hash)
    except ValueError:
        previous = prev_hash.encode("utf-8", "surrogatepass")  # a damaged link still hashes, and fails
    return hashlib.sha256(previous + canonical).hexdigest()


def ensure_sealable(event: AuditEvent) -> None:
    """Raise `InvalidRequest` now if `event` could not be sealed (naive time, non-JSON data)."""
    rfc3339(event.occurred_at)
    if not _is_plain(event.data):
        canonical_json(event.data)


def seal(previous_hash: str, sequence: int, event: AuditEvent) -> SealedRecord:
    """Place `event` at `sequence` after the record whose hash is `previous_hash`."""
    canonical = canonical_json(record_document(sequence, event))
    return SealedRecord(sequence=sequence, prev_hash=previous_hash, hash=digest(previous_hash, canonical), event=event)


# ------------------------------------------------------------------ checkpoints


def checkpoint_document(sequence: int, head_hash: str, created_at: dt.datetime, key_id: str) -> dict[str, Any]:
    return {
        "type": "remit.audit.checkpoint",
        "version": 1,
        "sequence": sequence,
        "head_hash": head_hash,
        "created_at": rfc3339(created_at),
        "key_id": key_id,
    }


def checkpoint_payload(checkpoint: Checkpoint) -> bytes:
    """The exact bytes a checkpoint's signature covers: JCS of its document."""
    return canonical_json(
        checkpoint_document(checkpoint.sequence, checkpoint.head_hash, checkpoint.created_at, checkpoint.key_id)
    )


def make_checkpoint(sequence: int, head_hash: str, created_at: dt.datetime, signer: CheckpointSigner) -> Checkpoint:
    """Sign "the chain had `head_hash` at `sequence`" with the audit key."""
    payload = canonical_json(checkpoint_document(sequence, head_hash, created_at, signer.key_id))
    return Checkpoint(
        sequence=sequence,
        head_hash=head_hash,
        created_at=created_at,
        key_id=signer.key_id,
        signature=signer.sign(payload),
    )


# ------------------------------------------------------------------ verification


class ChainVerifier:
    """Verifies a chain streamed in pages (`feed` each page in order, then `finish`).

    Checkpoints whose signature verifies with `signer` become anchors: the record at an anchor's
    sequence must carry its head hash, and the log must reach the latest anchor (else it was
    truncated). Without a signer, checkpoints are not trusted and truncation cannot be seen.
    """

    def __init__(self, checkpoints: Sequence[Checkpoint] = (), signer: CheckpointSigner | None = None) -> None:
        self._faults: list[Fault] = []
        self._record_fault: Fault | None = None
        self._anchors: dict[int, str] = {}
        self._expected = 1
        self._prev = GENESIS_HASH
        self._checked = 0
        self._last_anchor = 0
        for checkpoint in checkpoints if signer is not None else ():
            assert signer is not None  # noqa: S101 - narrowed by the loop's condition
            if checkpoint.key_id == signer.key_id and signer.verify(
                checkpoint_payload(checkpoint), checkpoint.signature
            ):
                self._anchors[checkpoint.sequence] = checkpoint.head_hash
            else:
                self._faults.append(
                    Fault(
                        FaultKind.CHECKPOINT_FORGED,
                        checkpoint.sequence,
                        f"checkpoint at {checkpoint.sequence} does not verify with audit key {signer.key_id!r}",
                    )
                )

    @property
    def checkpoints_checked(self) -> int:
        return len(self._anchors)

    def _fail(self, kind: FaultKind, sequence: int, message: str) -> None:
        self._record_fault = Fault(kind, sequence, message)
        self._faults.append(self._record_fault)

    def feed(self, records: Iterable[SealedRecord | UnreadableRecord]) -> bool:
        """Check the next records in order; False once a record fault was found (later ones are moot)."""
        for record in records:
            if self._record_fault is not None:
                return False
            sequence = record.sequence
            if sequence != self._expected:
                if sequence > self._expected:
                    self._fail(
                        FaultKind.MISSING,
                        self._expected,
                        f"records {self._expected}..{sequence - 1} are missing"
                        if sequence - 1 > self._expected
                        else f"record {self._expected} is missing",
                    )
                else:
                    self._fail(FaultKind.REORDERED, sequence, f"record {sequence} appears after {self._expected - 1}")
                return False
            if isinstance(record, UnreadableRecord):
                self._fail(FaultKind.ALTERED, sequence, f"record {sequence} cannot be decoded: {record.reason}")
                return False
            self._check(record)
        return self._record_fault is None

    def _check(self, record: SealedRecord) -> None:
        sequence = record.sequence
        try:
            canonical = canonical_json(record_document(sequence, record.event, schema=record.schema))
        except InvalidRequest:
            self._fail(FaultKind.ALTERED, sequence, f"record {sequence} holds a value JCS cannot encode")
            return
        linked = record.prev_hash == self._prev
        intact = digest(record.prev_hash, canonical) == record.hash
        if not (linked and intact):
            if linked:
                self._fail(
                    FaultKind.ALTERED,
                    sequence,
                    f"record {sequence} was altered: its content no longer matches its hash",
                )
            elif intact:
                self._fail(
                    FaultKind.RESEALED,
                    sequence - 1,
                    f"record {sequence} does not link to record {sequence - 1}: "
                    f"{sequence - 1} was rewritten and re-hashed",
                )
            else:
                self._fail(
                    FaultKind.REORDERED,
                    sequence,
                    f"record {sequence} does not belong at this position (moved, replaced or its link edited)",
                )
            return
        anchored = self._anchors.get(sequence)
        if anchored is not None:
            if anchored != record.hash:
                self._fail(
                    FaultKind.CHECKPOINT_MISMATCH,
                    self._last_anchor + 1,
                    f"records {self._last_anchor + 1}..{sequence} were rewritten: "
                    f"the head at {sequence} differs from its signed checkpoint",
                )
                return
            self._last_anchor = sequence
        self._prev = record.hash
        self._expected = sequence + 1
        self._checked += 1

    def finish(self) -> VerificationReport:
        """The report: every fault found, the first (lowest sequence) being `first_fault`."""
        latest = max(self._anchors, default=None)
        head = self._expected - 1
        if self._record_fault is None and latest is not None and latest > head:
            self._faults.append(
                Fault(
                    FaultKind.TRUNCATED,
                    head + 1,
                    f"the log ends at {head} but a signed checkpoint covers up to {latest}",
                )
            )
        return VerificationReport(
            records_checked=self._checked,
            head_sequence=head,
            head_hash=self._prev,
            checkpoints_checked=len(self._anchors),
            latest_checkpoint=latest,
            faults=tuple(self._faults),
        )


def verify(
    records: Iterable[SealedRecord | UnreadableRecord],
    checkpoints: Sequence[Checkpoint] = (),
    signer: CheckpointSigner | None = None,
) -> VerificationReport:
    """Verify a whole chain in memory (see `ChainVerifier` for pages)."""
    verifier = ChainVerifier(checkpoints, signer)
    verifier.feed(records)
    return verifier.finish()


def checkpoint_to_json(checkpoint: Checkpoint) -> dict[str, Any]:
    """The exported form of a checkpoint: its signed document plus the algorithm and signature."""
    document = checkpoint_document(checkpoint.sequence, checkpoint.head_hash, checkpoint.created_at, checkpoint.key_id)
    return {**document, "algorithm": checkpoint.algorithm, "signature": checkpoint.signature}


def checkpoint_from_json(document: Mapping[str, Any]) -> Checkpoint:
    """Parse an exported checkpoint; anything malformed is `InvalidRequest`."""
    try:
        created_at = dt.datetime.strptime(str(document["created_at"]), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
        sequence = int(document["sequence"])
        return Checkpoint(
            sequence=sequence,
            head_hash=str(document["head_hash"]),
            created_at=created_at,
            key_id=str(document["key_id"]),
            signature=str(document["signature"]),
            algorithm=str(document.get("algorithm", "Ed25519")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        msg = "not an exported audit checkpoint"
        raise InvalidRequest(msg, field="checkpoint") from exc
