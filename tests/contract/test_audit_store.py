"""The SQL audit chain on every backend: chained appends, group commit, checkpoints, paging and tamper detection."""

from __future__ import annotations

import datetime as dt
import json
import threading

from collections.abc import Iterator
from typing import Any

import pytest

from sqlalchemy import text
from tests.factories import make_owner

from remit.adapters.audit_keys import Ed25519CheckpointSigner
from remit.adapters.sql.audit import SqlAuditLedger
from remit.adapters.sql.audit_writer import AuditWriter
from remit.adapters.sql.engine import SqlDatabase
from remit.core.audit.chain import checkpoint_from_json
from remit.core.audit.models import ActorKind, AuditActor, AuditEvent, FaultKind, SealedRecord
from remit.core.audit.service import AuditLog
from remit.core.registry.service import RegistryService
from remit.errors import AuditUnavailable, InvalidRequest
from remit.testing import FrozenClock

HMAC_KEY = b"k" * 32


def event(number: int, *, task: str = "tsk_1", agent: str = "agt_1", kind: str = "decision.made") -> AuditEvent:
    return AuditEvent(
        id=f"evt_{number:026d}",
        type=kind,
        occurred_at=dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC) + dt.timedelta(microseconds=number),
        actor=AuditActor(ActorKind.AGENT, agent),
        subject_kind="task",
        subject_id=task,
        data={"n": number, "effect": "allow", "reasons": ["pol_1"], "ratio": 0.5},
        task_id=task,
        agent_id=agent,
    )


@pytest.fixture
def signer() -> Ed25519CheckpointSigner:
    return Ed25519CheckpointSigner.generate()


@pytest.fixture
def writer(database: SqlDatabase, clock: FrozenClock, signer: Ed25519CheckpointSigner) -> Iterator[AuditWriter]:
    with AuditWriter(database, clock=clock, signer=signer, checkpoint_every=4, max_batch=3) as running:
        yield running


@pytest.fixture
def log(database: SqlDatabase, writer: AuditWriter, clock: FrozenClock, signer: Ed25519CheckpointSigner) -> AuditLog:
    return AuditLog(
        appender=writer, ledger=SqlAuditLedger(database.engine), clock=clock, hmac_key=HMAC_KEY, signer=signer
    )


def fill(log: AuditLog, count: int) -> list[SealedRecord]:
    return [log.append(event(n)) for n in range(1, count + 1)]


def execute(database: SqlDatabase, statement: str, **params: Any) -> None:
    with database.engine.begin() as connection:
        connection.execute(text(statement), params)


def test_in_transaction_and_writer_appends_share_one_sequence(
    database: SqlDatabase, writer: AuditWriter, log: AuditLog
) -> None:
    """Records appended inside a transaction and through the writer form one gap-free, verifiable chain."""
    writer.append(event(1))
    with database.transaction() as tx:
        inside = [tx.audit.append(event(2)), tx.audit.append(event(3))]
    writer.append(event(4))

    assert [r.sequence for r in inside] == [2, 3]
    assert [r.sequence for r in log.records()] == [1, 2, 3, 4]
    assert log.verify().ok


def test_rolled_back_transaction_leaves_no_gap(database: SqlDatabase, log: AuditLog) -> None:
    """An append in a transaction that rolls back takes no sequence number from the chain."""
    log.append(event(1))

    def append_then_fail() -> None:
        with database.transaction() as tx:
            tx.audit.append(event(2))
            raise RuntimeError

    with pytest.raises(RuntimeError):
        append_then_fail()
    log.append(event(3))
    assert [r.sequence for r in log.records()] == [1, 2]
    assert log.verify().ok


def test_registry_change_is_chained_with_its_audit_record(registry: RegistryService, log: AuditLog) -> None:
    """A registry change writes its audit record into the chain in the same transaction."""
    owner = make_owner(registry)
    records = [r for r in log.records() if isinstance(r, SealedRecord)]
    assert [r.event.subject_id for r in records] == [owner.id]
    assert log.verify().ok


def test_checkpoints_are_signed_every_n_records_and_exported(log: AuditLog, signer: Ed25519CheckpointSigner) -> None:
    """With N=4 a signed checkpoint covers the head after four records; the export parses and verifies."""
    fill(log, 9)
    exported = [checkpoint_from_json(c) for c in json.loads(log.export_checkpoints())]
    assert exported
    assert all(c.key_id == signer.key_id for c in exported)
    report = log.verify(checkpoints=exported)
    assert report.ok
    assert report.checkpoints_checked == len(exported)
    assert report.latest_checkpoint is not None
    assert report.latest_checkpoint >= 4


def test_checkpoint_now_covers_the_head(log: AuditLog) -> None:
    """An explicit checkpoint names the current head, and a second one without new records is skipped."""
    records = fill(log, 2)
    checkpoint = log.checkpoint()
    assert checkpoint is not None
    assert (checkpoint.sequence, checkpoint.head_hash) == (2, records[-1].hash)
    assert log.checkpoint() is None


def test_checkpoint_on_time_covers_in_transaction_appends(
    database: SqlDatabase, clock: FrozenClock, signer: Ed25519CheckpointSigner
) -> None:
    """After T has passed the writer's tick signs the head, even when only in-transaction appends moved it."""
    ledger = SqlAuditLedger(database.engine)
    with AuditWriter(database, clock=clock, signer=signer, checkpoint_interval=dt.timedelta(seconds=10)):
        with database.transaction() as tx:
            tx.audit.append(event(1))
        clock.advance(dt.timedelta(seconds=11))
        pause = threading.Event()
        for _ in range(400):  # bounded wait for the writer's tick, never an assertion on time
            if ledger.checkpoints() or pause.wait(0.05):
                break
    assert [c.sequence for c in ledger.checkpoints()] == [1]


def test_pages_filter_by_task_agent_and_type(log: AuditLog) -> None:
    """Reading pages filters by task, agent and type and walks forward with next_after."""
    log.append(event(1, task="tsk_a"))
    log.append(event(2, task="tsk_b", agent="agt_2"))
    log.append(event(3, task="tsk_a", kind="tool.called"))
    log.append(event(4, task="tsk_a"))

    assert [r.sequence for r in log.records(task_id="tsk_a")] == [1, 3, 4]
    assert [r.sequence for r in log.records(agent_id="agt_2")] == [2]
    assert [r.sequence for r in log.records(task_id="tsk_a", types=["tool.called"])] == [3]
    first = log.page(limit=2, task_id="tsk_a")
    assert [r.sequence for r in first.records] == [1, 3]
    assert first.next_after == 3
    assert [r.sequence for r in log.page(after=3, limit=2, task_id="tsk_a").records] == [4]


def test_hmac_of_sensitive_value_is_keyed_and_stable(log: AuditLog, database: SqlDatabase, clock: FrozenClock) -> None:
    """hmac_of gives the same digest for the same value and key, another with another key, never the value."""
    other = AuditLog(appender=log, ledger=SqlAuditLedger(database.engine), clock=clock, hmac_key=b"x" * 32, signer=None)
    digest = log.hmac_of("crd_secret_jti")
    assert digest == log.hmac_of("crd_secret_jti")
    assert digest != other.hmac_of("crd_secret_jti")
    assert "crd_secret_jti" not in digest
    assert len(digest) == 64
    with pytest.raises(InvalidRequest):
        AuditLog(appender=log, ledger=SqlAuditLedger(database.engine), clock=clock, hmac_key=b"short")


def test_malformed_event_fails_only_its_caller(writer: AuditWriter, log: AuditLog) -> None:
    """An event whose data JCS cannot encode is refused to its caller; the log stays whole."""
    bad = AuditEvent(
        id="evt_bad",
        type="decision.made",
        occurred_at=dt.datetime(2026, 1, 15, tzinfo=dt.UTC),
        actor=AuditActor.system(),
        subject_kind="task",
        subject_id="tsk_1",
        data={"n": float("inf")},
    )
    with pytest.raises(InvalidRequest):
        writer.append(bad)
    log.append(event(1))
    assert log.verify().ok


def test_writer_refuses_when_stopped_and_when_the_store_fails(
    database: SqlDatabase, clock: FrozenClock, writer: AuditWriter
) -> None:
    """A stopped writer, or one whose store is gone, answers audit_unavailable and acknowledges nothing."""
    stopped = AuditWriter(database, clock=clock)
    with pytest.raises(AuditUnavailable):
        stopped.append(event(1))

    execute(database, "ALTER TABLE audit_events RENAME TO audit_events_gone")
    try:
        with pytest.raises(AuditUnavailable):
            writer.append(event(2))
    finally:
        execute(database, "ALTER TABLE audit_events_gone RENAME TO audit_events")
    # Once the store is back, the same writer (on a fresh connection) writes again; nothing was acknowledged.
    assert writer.append(event(3)).sequence == 1


def test_duplicate_event_id_fails_only_that_caller(writer: AuditWriter, log: AuditLog) -> None:
    """A second record with an existing event id is refused; the chain holds the first once."""
    log.append(event(1))
    with pytest.raises(AuditUnavailable):
        writer.append(event(1))
    assert [r.sequence for r in log.records()] == [1]
    assert log.verify().ok


# ------------------------------------------------------------------ tampering with stored rows


def located(log: AuditLog) -> tuple[FaultKind, int]:
    fault = log.verify().first_fault
    assert fault is not None
    return fault.kind, fault.sequence


def test_flipped_byte_in_stored_data_is_located(database: SqlDatabase, log: AuditLog) -> None:
    """Changing one character of a stored row's data is reported as altered at that record."""
    fill(log, 5)
    with database.engine.begin() as connection:
        stored = connection.execute(text("SELECT record FROM audit_events WHERE seq = 3")).scalar_one()
        assert '"effect":"allow"' in stored
        connection.execute(
            text("UPDATE audit_events SET record = :d WHERE seq = 3"), {"d": stored.replace('"allow"', '"allpw"')}
        )
    assert located(log) == (FaultKind.ALTERED, 3)


@pytest.mark.parametrize(
    ("column", "value"), [("task_id", "tsk_other"), ("agent_id", None), ("type", "decision.undone"), ("id", "evt_x")]
)
def test_changed_lookup_column_is_located(database: SqlDatabase, log: AuditLog, column: str, value: str | None) -> None:
    """A lookup column rewritten apart from the sealed document (hiding a record from a trace) is altered there."""
    fill(log, 4)
    execute(database, f"UPDATE audit_events SET {column} = :v WHERE seq = 2", v=value)  # noqa: S608 - fixed names
    assert located(log) == (FaultKind.ALTERED, 2)


def test_row_renumbered_over_a_deleted_one_is_located(database: SqlDatabase, log: AuditLog) -> None:
    """Deleting record 2 and renumbering record 3 as 2 is reported at 2: its sealed document says 3."""
    fill(log, 4)
    execute(database, "DELETE FROM audit_events WHERE seq = 2")
    execute(database, "UPDATE audit_events SET seq = 2 WHERE seq = 3")
    assert located(log) == (FaultKind.REORDERED, 2)


def test_deleted_row_is_located(database: SqlDatabase, log: AuditLog) -> None:
    """Deleting a stored row is reported as missing at its sequence."""
    fill(log, 5)
    execute(database, "DELETE FROM audit_events WHERE seq = 2")
    assert located(log) == (FaultKind.MISSING, 2)


def test_swapped_rows_are_located(database: SqlDatabase, log: AuditLog) -> None:
    """Exchanging two stored rows' sequence numbers is reported at the first position touched."""
    fill(log, 5)
    execute(database, "UPDATE audit_events SET seq = -2 WHERE seq = 2")
    execute(database, "UPDATE audit_events SET seq = 2 WHERE seq = 4")
    execute(database, "UPDATE audit_events SET seq = 4 WHERE seq = -2")
    assert located(log) == (FaultKind.REORDERED, 2)


def test_truncated_tail_is_located(database: SqlDatabase, log: AuditLog) -> None:
    """Deleting the newest rows is caught against the latest signed checkpoint."""
    fill(log, 8)
    execute(database, "DELETE FROM audit_events WHERE seq > 5")
    assert located(log) == (FaultKind.TRUNCATED, 6)


def test_forged_checkpoint_is_located(database: SqlDatabase, log: AuditLog) -> None:
    """A stored checkpoint whose head was edited no longer verifies with the audit key."""
    fill(log, 8)
    execute(database, "UPDATE audit_checkpoints SET head_hash = :h WHERE seq = 4", h="f" * 64)
    assert located(log) == (FaultKind.CHECKPOINT_FORGED, 4)


def test_undecodable_stored_document_is_located(database: SqlDatabase, log: AuditLog) -> None:
    """A stored document that cannot even be decoded is reported as altered at its record, and listed apart."""
    fill(log, 3)
    execute(database, "UPDATE audit_events SET record = 'robot' WHERE seq = 2")
    assert located(log) == (FaultKind.ALTERED, 2)
    assert [type(r).__name__ for r in log.records()] == ["SealedRecord", "UnreadableRecord", "SealedRecord"]
