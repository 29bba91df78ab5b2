"""The audit hash chain: canonical encoding (RFC 8785 JCS), `seal`, checkpoints and `verify`, as pure functions.

Each record's hash is `SHA-256(prev_hash || JCS(record))`, where `prev_hash` is the previous record's
hash as 32 raw bytes (`GENESIS_HASH`, 32 zero bytes, for record 1) and `record` is the event's
document with its `sequence` (see `record_document`). Checkpoints sign `JCS(checkpoint)` with the
audit key. Verification names the first record that was altered, removed, reordered or truncated.

An event is canonicalised once (`prepare`), before its place in the chain is known: the JCS bytes
are kept in two parts around the sequence number, which `seal_batch` splices in under the chain
lock. The store keeps those exact bytes (`StoredRecord.document`), so verifying a stored chain
re-hashes bytes instead of re-encoding events (ADR 0009).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import rfc8785

from remit.core.audit.models import (
    GENESIS_HASH,
    ActorKind,
    AuditActor,
    AuditEvent,
    Checkpoint,
    Fault,
    FaultKind,
    SealedRecord,
    StoredRecord,
    UnreadableRecord,
    VerificationReport,
)
from remit.core.audit.ports import CheckpointSigner
from remit.errors import InvalidRequest

__all__ = [
    "ChainVerifier",
    "PreparedRecord",
    "canonical_json",
    "checkpoint_document",
    "checkpoint_from_json",
    "checkpoint_payload",
    "checkpoint_to_json",
    "digest",
    "make_checkpoint",
    "prepare",
    "read_stored",
    "record_document",
    "rfc3339",
    "seal",
    "seal_batch",
    "verify",
]

# JCS (RFC 8785 §3.2.2.3) serialises numbers as IEEE 754 doubles: integers beyond 2**53 are refused.
_MAX_SAFE_INTEGER: Final = 2**53 - 1
_OPTIONAL_FIELDS: Final = ("task_id", "agent_id", "owner_id", "function_id", "correlation_id")


_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"
_UTC_SUFFIX: Final = len("+00:00")
_FOUR_DIGIT_YEARS: Final = 1000


def rfc3339(moment: dt.datetime) -> str:
    """RFC 3339 UTC with microseconds, e.g. `2026-01-15T09:00:00.000000Z`; naive datetimes are refused."""
    if moment.tzinfo is None:
        msg = "audit times must be aware datetimes"
        raise InvalidRequest(msg, field="occurred_at")
    utc = moment if moment.tzinfo is dt.UTC else moment.astimezone(dt.UTC)
    if utc.year >= _FOUR_DIGIT_YEARS:  # the same text as the strftime form below, at a third of its cost
        return utc.isoformat(timespec="microseconds")[:-_UTC_SUFFIX] + "Z"
    return utc.strftime(_TIME_FORMAT)


def _parse_time(text: str) -> dt.datetime:
    """The inverse of `rfc3339`; anything else is ValueError."""
    if len(text) == len("2026-01-15T09:00:00.000000Z") and text[10] == "T" and text[-1] == "Z":
        return dt.datetime.fromisoformat(text[:-1]).replace(tzinfo=dt.UTC)
    return dt.datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=dt.UTC)


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


_ENCODER: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: object) -> bytes:
    """RFC 8785 (JCS) canonical UTF-8 bytes of a JSON value.

    Fast path: for ASCII documents without floats, `json.dumps` with sorted keys and no whitespace
    is byte-identical to JCS (same escapes, code-point order equals UTF-16 order in ASCII). Anything
    else (floats, non-ASCII text) goes through the `rfc8785` reference implementation. A value JCS
    cannot represent (non-string keys, NaN, integers beyond 2**53, other types) is `InvalidRequest`.
    """
    if _is_plain(value):
        text = _ENCODER.encode(value)
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


@dataclass(frozen=True, slots=True)
class PreparedRecord:
    """An event canonicalised before its sequence is known: `JCS(document) = before + sequence + after`."""

    event: AuditEvent
    before: bytes  # the JCS bytes up to and including `"sequence":`
    after: bytes  # the JCS bytes from the `,` that follows the sequence number


_SEQUENCE_KEY: Final = b'"sequence":'
_PLACEHOLDER: Final = _SEQUENCE_KEY + b"0,"


def prepare(event: AuditEvent) -> PreparedRecord:
    """Canonicalise `event` once, with its sequence left open; `InvalidRequest` if it cannot be sealed.

    The document is encoded with sequence 0, then cut around that number. The cut is found from the
    end: the members after `sequence` in key order (`subject_id`, `subject_kind`, `task_id`, `type`)
    are strings, and a JSON string cannot contain `"sequence":` (its quotes would be escaped), so the
    last occurrence is the top-level member, whatever `data` holds.
    """
    fast = _prepare_plain(event)
    if fast is not None:
        return fast
    canonical = canonical_json(record_document(0, event))
    cut = canonical.rindex(_PLACEHOLDER) + len(_SEQUENCE_KEY)
    return PreparedRecord(event=event, before=canonical[:cut], after=canonical[cut + 1 :])


_escape: Final = json.encoder.encode_basestring  # JCS string form: `"`, `\\` and U+0000..U+001F escaped, the rest raw


def _prepare_plain(event: AuditEvent) -> PreparedRecord | None:
    """`prepare` for the common case, writing the document's members in JCS order directly; None otherwise.

    The top-level keys are fixed ASCII names, so their order is known; strings are escaped exactly
    as JCS does (json's escaping is the same for every character); `data` takes the same fast path
    as `canonical_json` (plain, ASCII). Anything else (non-`str` fields, floats, non-ASCII data) is
    left to the general path. A property test checks the result equals the rfc8785 reference.
    """
    data = event.data
    if not _is_plain(data):
        return None
    encoded = _ENCODER.encode(data)
    if not encoded.isascii():
        return None
    try:
        parts = ['{"actor":{"id":', _escape(event.actor.id), ',"kind":', _escape(event.actor.kind.value), "}"]
        if event.agent_id is not None:
            parts += [',"agent_id":', _escape(event.agent_id)]
        if event.correlation_id is not None:
            parts += [',"correlation_id":', _escape(event.correlation_id)]
        parts += [',"data":', encoded]
        if event.function_id is not None:
            parts += [',"function_id":', _escape(event.function_id)]
        parts += [',"id":', _escape(event.id), ',"occurred_at":"', rfc3339(event.occurred_at), '"']
        if event.owner_id is not None:
            parts += [',"owner_id":', _escape(event.owner_id)]
        parts += [f',"schema":{AuditEvent.SCHEMA},"sequence":']
        before = "".join(parts).encode("utf-8")
        parts = [',"subject_id":', _escape(event.subject_id), ',"subject_kind":', _escape(event.subject_kind)]
        if event.task_id is not None:
            parts += [',"task_id":', _escape(event.task_id)]
        parts += [',"type":', _escape(event.type), "}"]
        after = "".join(parts).encode("utf-8")
    except (TypeError, AttributeError, UnicodeEncodeError):
        return None  # a member that is not text, or a lone surrogate: the general path decides
    return PreparedRecord(event=event, before=before, after=after)


def seal_batch(
    previous_hash: str, last_sequence: int, prepared: Sequence[PreparedRecord]
) -> list[tuple[SealedRecord, str]]:
    """Chain `prepared` after (`last_sequence`, `previous_hash`), in order: each sealed record and its JCS text.

    The text is what the store keeps; the record's hash covers exactly its UTF-8 bytes.
    """
    if last_sequence + len(prepared) > _MAX_SAFE_INTEGER:
        msg = "the audit chain has reached the largest sequence JCS can encode"
        raise InvalidRequest(msg, field="sequence")
    sealed: list[tuple[SealedRecord, str]] = []
    previous = bytes.fromhex(previous_hash)
    previous_text = previous_hash
    sequence = last_sequence
    sha256 = hashlib.sha256
    for record in prepared:
        sequence += 1
        canonical = b"%b%d%b" % (record.before, sequence, record.after)
        hashed = sha256(previous + canonical)
        hash_text = hashed.hexdigest()
        sealed.append(
            (
                SealedRecord(sequence=sequence, prev_hash=previous_text, hash=hash_text, event=record.event),
                canonical.decode("utf-8"),
            )
        )
        previous, previous_text = hashed.digest(), hash_text
    return sealed


def seal(previous_hash: str, sequence: int, event: AuditEvent) -> SealedRecord:
    """Place `event` at `sequence` after the record whose hash is `previous_hash`."""
    return seal_batch(previous_hash, sequence - 1, [prepare(event)])[0][0]


def _text(value: object) -> str:
    if type(value) is not str:
        raise TypeError(type(value).__name__)
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _jcs_integer(text: str) -> int | float:
    # JCS writes every number as an IEEE 754 double; an integer beyond 2**53 can only have been a
    # float (e.g. 1e20), and must read back as one to encode to the same text again.
    value = int(text)
    return value if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER else float(text)


def read_stored(row: StoredRecord) -> SealedRecord | UnreadableRecord:
    """The sealed record a stored row holds, decoded from its document (the inverse of `record_document`)."""
    try:
        document = json.loads(row.document, parse_int=_jcs_integer)
        actor = document["actor"]
        data = document["data"]
        schema = document["schema"]
        if type(data) is not dict or type(schema) is not int:
            raise TypeError(type(data).__name__)  # noqa: TRY301 - one way out for every malformed document
        if document["sequence"] != row.sequence:
            raise ValueError(document["sequence"])  # noqa: TRY301 - a row moved to another sequence
        event = AuditEvent(
            id=_text(document["id"]),
            type=_text(document["type"]),
            occurred_at=_parse_time(_text(document["occurred_at"])),
            actor=AuditActor(ActorKind(actor["kind"]), _text(actor["id"])),
            subject_kind=_text(document["subject_kind"]),
            subject_id=_text(document["subject_id"]),
            data=data,
            task_id=_optional_text(document.get("task_id")),
            agent_id=_optional_text(document.get("agent_id")),
            owner_id=_optional_text(document.get("owner_id")),
            function_id=_optional_text(document.get("function_id")),
            correlation_id=_optional_text(document.get("correlation_id")),
        )
        return SealedRecord(sequence=row.sequence, prev_hash=row.prev_hash, hash=row.hash, event=event, schema=schema)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return UnreadableRecord(sequence=row.sequence, reason=type(exc).__name__)


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
        """Check the next records in order; False once a record fault was found (later ones are moot).

        Each record is re-encoded from its event, as anyone holding exported records would do.
        """
        for record in records:
            if self._record_fault is not None:
                return False
            sequence = record.sequence
            if sequence != self._expected:
                self._out_of_place(sequence)
                return False
            if isinstance(record, UnreadableRecord):
                self._fail(FaultKind.ALTERED, sequence, f"record {sequence} cannot be decoded: {record.reason}")
                return False
            try:
                canonical = canonical_json(record_document(sequence, record.event, schema=record.schema))
            except InvalidRequest:
                self._fail(FaultKind.ALTERED, sequence, f"record {sequence} holds a value JCS cannot encode")
                return False
            intact = digest(record.prev_hash, canonical) == record.hash
            if not self._judge(sequence, record.prev_hash, record.hash, intact=intact):
                return False
        return self._record_fault is None

    def feed_stored(self, rows: Iterable[StoredRecord]) -> bool:
        """Check the next stored rows in order, from their stored JCS bytes; False once a record fault was found.

        Per row: the sequence is the next one, `prev_hash` is the previous row's hash, SHA-256 over
        `prev_hash` and the stored document bytes gives `hash`, and the document's `sequence`, `id`,
        `type`, `task_id` and `agent_id` equal the row's columns. The common case runs inline; any
        row that fails, or sits at a checkpoint, takes the general path that names the fault.
        """
        if self._record_fault is not None:
            return False
        sha256, loads, anchors = hashlib.sha256, json.loads, self._anchors
        expected, previous, checked = self._expected, self._prev, self._checked
        previous_raw = bytes.fromhex(previous)
        try:
            for row in rows:
                sequence, prev_hash, hash_, document, id_, type_, task_id, agent_id = row
                if sequence == expected and prev_hash == previous and sequence not in anchors:
                    try:
                        hashed = sha256(previous_raw + document.encode())
                        if hashed.hexdigest() == hash_:
                            body = loads(document)
                            if (
                                body["sequence"] == sequence
                                and body["id"] == id_
                                and body["type"] == type_
                                and body.get("task_id") == task_id
                                and body.get("agent_id") == agent_id
                            ):
                                previous, previous_raw = hash_, hashed.digest()
                                expected += 1
                                checked += 1
                                continue
                    except (AttributeError, KeyError, TypeError, ValueError):
                        pass  # the general path below names the fault
                self._expected, self._prev, self._checked = expected, previous, checked
                if not self._check_stored(row):
                    return False
                expected, previous, checked = self._expected, self._prev, self._checked
                previous_raw = bytes.fromhex(previous)
        finally:
            if self._record_fault is None:
                self._expected, self._prev, self._checked = expected, previous, checked
        return True

    def _check_stored(self, row: StoredRecord) -> bool:
        sequence = row.sequence
        if sequence != self._expected:
            self._out_of_place(sequence)
            return False
        try:
            intact = digest(row.prev_hash, row.document.encode("utf-8", "surrogatepass")) == row.hash
            if intact:
                body = json.loads(row.document)
                matches = (body["sequence"], body["id"], body["type"], body.get("task_id"), body.get("agent_id"))
                intact = matches == (sequence, row.id, row.type, row.task_id, row.agent_id)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            self._fail(FaultKind.ALTERED, sequence, f"record {sequence} cannot be decoded: {type(exc).__name__}")
            return False
        return self._judge(sequence, row.prev_hash, row.hash, intact=intact)

    def _out_of_place(self, sequence: int) -> None:
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

    def _judge(self, sequence: int, prev_hash: str, hash_: str, *, intact: bool) -> bool:
        """Place a record at the expected position: `intact` says whether its content matches its hash."""
        linked = prev_hash == self._prev
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
            return False
        anchored = self._anchors.get(sequence)
        if anchored is not None:
            if anchored != hash_:
                self._fail(
                    FaultKind.CHECKPOINT_MISMATCH,
                    self._last_anchor + 1,
                    f"records {self._last_anchor + 1}..{sequence} were rewritten: "
                    f"the head at {sequence} differs from its signed checkpoint",
                )
                return False
            self._last_anchor = sequence
        self._prev = hash_
        self._expected = sequence + 1
        self._checked += 1
        return True

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
