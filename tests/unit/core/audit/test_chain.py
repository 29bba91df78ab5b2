"""The hash chain as pure functions: canonical form, sealing, and verification that locates each kind of tampering."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

from typing import Any

import pytest
import rfc8785

from hypothesis import given
from hypothesis import strategies as st

from remit.adapters.audit_keys import Ed25519CheckpointSigner
from remit.core.audit.chain import (
    ChainVerifier,
    canonical_json,
    checkpoint_from_json,
    checkpoint_to_json,
    make_checkpoint,
    prepare,
    read_stored,
    record_document,
    rfc3339,
    seal,
    seal_batch,
    verify,
)
from remit.core.audit.models import (
    GENESIS_HASH,
    ActorKind,
    AuditActor,
    AuditEvent,
    Checkpoint,
    FaultKind,
    SealedRecord,
    StoredRecord,
    UnreadableRecord,
)
from remit.errors import InvalidRequest

T0 = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)


def event(number: int, **data: Any) -> AuditEvent:
    return AuditEvent(
        id=f"evt_{number:026d}",
        type="decision.made",
        occurred_at=T0 + dt.timedelta(microseconds=number),
        actor=AuditActor(ActorKind.AGENT, "agt_1"),
        subject_kind="task",
        subject_id="tsk_1",
        data={"n": number, **data},
        task_id="tsk_1",
    )


def chain(length: int) -> list[SealedRecord]:
    records: list[SealedRecord] = []
    previous = GENESIS_HASH
    for sequence in range(1, length + 1):
        records.append(seal(previous, sequence, event(sequence)))
        previous = records[-1].hash
    return records


@pytest.fixture(scope="module")
def signer() -> Ed25519CheckpointSigner:
    return Ed25519CheckpointSigner.generate()


def test_record_hash_is_sha256_of_previous_hash_and_jcs_document() -> None:
    """Record 1's hash is SHA-256 over 32 zero bytes followed by the JCS bytes of its document."""
    first = chain(1)[0]
    expected = hashlib.sha256(bytes(32) + rfc8785.dumps(record_document(1, first.event))).hexdigest()
    assert first.prev_hash == GENESIS_HASH == "0" * 64
    assert first.hash == expected


def test_times_are_rfc3339_utc_with_microseconds() -> None:
    """Times are encoded as RFC 3339 UTC with six fractional digits, whatever the input zone."""
    moment = dt.datetime(2026, 1, 15, 10, 0, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert rfc3339(moment) == "2026-01-15T09:00:00.000005Z"
    with pytest.raises(InvalidRequest):
        rfc3339(dt.datetime(2026, 1, 15))  # noqa: DTZ001 - the naive datetime under test


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    # Lone surrogates are not text; JCS refuses them and so do we.
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"]), max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_fast_canonical_form_equals_the_rfc8785_reference(value: object) -> None:
    """canonical_json is byte-identical to the rfc8785 reference implementation for every JSON value."""
    assert canonical_json(value) == rfc8785.dumps(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [{1: "int key"}, {"n": float("nan")}, {"n": 2**60}, {"at": T0}])
def test_values_jcs_cannot_represent_are_refused(bad: dict[Any, Any]) -> None:
    """Data JCS cannot encode (non-string keys, NaN, unsafe integers, other types) is InvalidRequest."""
    with pytest.raises(InvalidRequest):
        canonical_json(bad)


def test_intact_chain_verifies() -> None:
    """An untouched chain verifies and reports its head."""
    records = chain(5)
    report = verify(records)
    assert report.ok
    assert report.records_checked == 5
    assert (report.head_sequence, report.head_hash) == (5, records[-1].hash)


def test_altered_record_is_located() -> None:
    """Changing one record's data is reported as `altered` at that record."""
    records = chain(5)
    records[2] = dataclasses.replace(records[2], event=dataclasses.replace(records[2].event, data={"n": 99}))
    fault = verify(records).first_fault
    assert fault is not None
    assert (fault.kind, fault.sequence) == (FaultKind.ALTERED, 3)


def test_removed_record_is_located() -> None:
    """Removing a record is reported as `missing` at its sequence number."""
    records = chain(5)
    del records[1]
    fault = verify(records).first_fault
    assert fault is not None
    assert (fault.kind, fault.sequence) == (FaultKind.MISSING, 2)


def test_swapped_records_are_located() -> None:
    """Exchanging two records' contents is reported as `reordered` at the first position touched."""
    records = chain(5)
    a, b = records[1], records[3]
    records[1] = dataclasses.replace(b, sequence=2)
    records[3] = dataclasses.replace(a, sequence=4)
    fault = verify(records).first_fault
    assert fault is not None
    assert (fault.kind, fault.sequence) == (FaultKind.REORDERED, 2)


def test_resealed_record_is_located_at_the_rewritten_record() -> None:
    """Rewriting a record and recomputing its hash is caught where the next record stops linking."""
    records = chain(5)
    records[1] = seal(records[0].hash, 2, dataclasses.replace(records[1].event, data={"n": "forged"}))
    fault = verify(records).first_fault
    assert fault is not None
    assert (fault.kind, fault.sequence) == (FaultKind.RESEALED, 2)


def test_unreadable_record_is_reported_altered() -> None:
    """A row that cannot even be decoded is reported as altered at its sequence."""
    records: list[SealedRecord | UnreadableRecord] = [*chain(3)]
    records[1] = UnreadableRecord(2, "ValueError")
    fault = verify(records).first_fault
    assert fault is not None
    assert (fault.kind, fault.sequence) == (FaultKind.ALTERED, 2)


def test_truncated_tail_is_caught_by_the_latest_checkpoint(signer: Ed25519CheckpointSigner) -> None:
    """Dropping the tail is invisible to the chain alone but caught against a signed checkpoint."""
    records = chain(6)
    checkpoint = make_checkpoint(6, records[-1].hash, T0, signer)
    assert verify(records[:4]).ok
    fault = verify(records[:4], [checkpoint], signer).first_fault
    assert fault is not None
    assert (fault.kind, fault.sequence) == (FaultKind.TRUNCATED, 5)


def test_history_rewritten_under_a_checkpoint_is_caught(signer: Ed25519CheckpointSigner) -> None:
    """A fully re-hashed history no longer matches the head its signed checkpoint names."""
    records = chain(4)
    checkpoint = make_checkpoint(4, records[-1].hash, T0, signer)
    rewritten = [seal(GENESIS_HASH, 1, event(1, extra="forged"))]
    for sequence in range(2, 5):
        rewritten.append(seal(rewritten[-1].hash, sequence, records[sequence - 1].event))
    fault = verify(rewritten, [checkpoint], signer).first_fault
    assert fault is not None
    assert (fault.kind, fault.sequence) == (FaultKind.CHECKPOINT_MISMATCH, 1)


def test_forged_checkpoint_is_rejected(signer: Ed25519CheckpointSigner) -> None:
    """A checkpoint signed with another key, or with an edited head, is reported forged."""
    records = chain(3)
    other = Ed25519CheckpointSigner.generate()
    genuine = make_checkpoint(3, records[-1].hash, T0, signer)
    foreign = dataclasses.replace(make_checkpoint(3, records[-1].hash, T0, other), key_id=signer.key_id)
    edited = dataclasses.replace(genuine, sequence=2)
    for forged in (foreign, edited):
        report = verify(records, [forged], signer)
        assert report.first_fault is not None
        assert report.first_fault.kind is FaultKind.CHECKPOINT_FORGED
    assert verify(records, [genuine], signer).ok


def test_exported_checkpoint_round_trips_and_still_verifies(signer: Ed25519CheckpointSigner) -> None:
    """A checkpoint exported as JSON and parsed back verifies against the same chain."""
    records = chain(3)
    checkpoint = make_checkpoint(3, records[-1].hash, T0, signer)
    parsed = checkpoint_from_json(checkpoint_to_json(checkpoint))
    assert parsed == checkpoint
    assert verify(records, [parsed], signer).checkpoints_checked == 1
    with pytest.raises(InvalidRequest):
        checkpoint_from_json({"sequence": 1})


# ------------------------------------------------------------------ prepared records and stored rows


texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
FOUR_DIGIT_YEARS = dt.datetime(1000, 1, 1)  # noqa: DTZ001 - naive, as hypothesis wants its bounds; it adds the zone
optional_texts = st.none() | texts


@st.composite
def events(draw: st.DrawFn) -> AuditEvent:
    return AuditEvent(
        id=draw(texts),
        type=draw(texts),
        occurred_at=draw(st.datetimes(min_value=FOUR_DIGIT_YEARS, timezones=st.just(dt.UTC))),
        actor=AuditActor(draw(st.sampled_from(ActorKind)), draw(texts)),
        subject_kind=draw(texts),
        subject_id=draw(texts),
        data=draw(st.dictionaries(texts, json_values, max_size=4)),
        task_id=draw(optional_texts),
        agent_id=draw(optional_texts),
        owner_id=draw(optional_texts),
        function_id=draw(optional_texts),
        correlation_id=draw(optional_texts),
    )


@given(events(), st.integers(1, 2**53 - 1))
def test_prepared_record_splices_to_the_jcs_document(record: AuditEvent, sequence: int) -> None:
    """Canonicalising once and splicing the sequence in later gives exactly JCS of the record's document."""
    sealed, document = seal_batch(GENESIS_HASH, sequence - 1, [prepare(record)])[0]
    expected = rfc8785.dumps(record_document(sequence, record))
    assert document.encode("utf-8") == expected
    assert sealed.hash == hashlib.sha256(bytes(32) + expected).hexdigest()


@given(st.datetimes(min_value=FOUR_DIGIT_YEARS, timezones=st.just(dt.UTC)))
def test_fast_time_form_equals_the_strftime_definition(moment: dt.datetime) -> None:
    """The isoformat-based time text is the `%Y-%m-%dT%H:%M:%S.%fZ` form the hashes were defined with."""
    assert rfc3339(moment) == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stored(length: int) -> list[StoredRecord]:
    rows: list[StoredRecord] = []
    for record, document in seal_batch(GENESIS_HASH, 0, [prepare(event(n)) for n in range(1, length + 1)]):
        e = record.event
        rows.append(
            StoredRecord(record.sequence, record.prev_hash, record.hash, document, e.id, e.type, e.task_id, None)
        )
    return rows


def stored_fault(rows: list[StoredRecord], checkpoints: list[Checkpoint] | None = None, signer: Any = None) -> Any:
    verifier = ChainVerifier(checkpoints or [], signer)
    verifier.feed_stored(rows[:2])  # in two pages, as the ledger feeds them
    verifier.feed_stored(rows[2:])
    fault = verifier.finish().first_fault
    return None if fault is None else (fault.kind, fault.sequence)


@given(events())
def test_stored_row_decodes_to_the_sealed_event(record: AuditEvent) -> None:
    """A stored row decodes to the sealed event (as JCS sees it: 1.0 reads back as 1, 1e20 as a float).

    It re-encodes to the very bytes stored, so exported records verify by re-encoding.
    """
    sealed, document = seal_batch(GENESIS_HASH, 0, [prepare(record)])[0]
    row = StoredRecord(1, GENESIS_HASH, sealed.hash, document, record.id, record.type, record.task_id, record.agent_id)
    decoded = read_stored(row)
    assert isinstance(decoded, SealedRecord)
    assert dataclasses.replace(decoded, event=dataclasses.replace(decoded.event, data=record.data)) == sealed
    assert canonical_json(record_document(1, decoded.event)).decode("utf-8") == document
    assert verify([decoded]).ok


def test_stored_rows_verify_like_re_encoded_records(signer: Ed25519CheckpointSigner) -> None:
    """An intact stored chain verifies from its bytes, with the same head as re-encoding its events."""
    rows = stored(6)
    records = [read_stored(r) for r in rows]
    checkpoint = make_checkpoint(4, rows[3].hash, T0, signer)
    verifier = ChainVerifier([checkpoint], signer)
    assert verifier.feed_stored(rows)
    report = verifier.finish()
    assert report == verify(records, [checkpoint], signer)
    assert (report.ok, report.records_checked, report.head_hash, report.checkpoints_checked) == (
        True,
        6,
        rows[-1].hash,
        1,
    )


def test_stored_row_faults_are_located(signer: Ed25519CheckpointSigner) -> None:
    """Each kind of change to stored rows is named at the record where it happened."""
    rows = stored(5)
    altered = rows.copy()
    altered[2] = altered[2]._replace(document=altered[2].document.replace('"n":3', '"n":4'))
    assert stored_fault(altered) == (FaultKind.ALTERED, 3)
    hidden = rows.copy()
    hidden[2] = hidden[2]._replace(task_id="tsk_other")
    assert stored_fault(hidden) == (FaultKind.ALTERED, 3)
    garbage = rows.copy()
    garbage[2] = garbage[2]._replace(document=b"not text")  # type: ignore[arg-type]  # what a damaged row may hold
    assert stored_fault(garbage) == (FaultKind.ALTERED, 3)
    removed = rows[:1] + rows[2:]
    assert stored_fault(removed) == (FaultKind.MISSING, 2)
    moved = [rows[0], rows[2]._replace(sequence=2), *rows[3:]]
    assert stored_fault(moved) == (FaultKind.REORDERED, 2)
    forged = stored(5)
    resealed, document = seal_batch(rows[0].hash, 1, [prepare(event(2, extra="forged"))])[0]
    forged[1] = forged[1]._replace(hash=resealed.hash, document=document)
    assert stored_fault(forged) == (FaultKind.RESEALED, 2)
    checkpoint = make_checkpoint(3, "f" * 64, T0, signer)
    assert stored_fault(rows, [checkpoint], signer) == (FaultKind.CHECKPOINT_MISMATCH, 1)
    assert stored_fault(rows[:3], [make_checkpoint(5, rows[4].hash, T0, signer)], signer) == (FaultKind.TRUNCATED, 4)
    assert stored_fault(rows) is None
