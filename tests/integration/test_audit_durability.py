"""Group commit under load and under SIGKILL: every acknowledged record is stored exactly once and the chain verifies."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import threading

from collections.abc import Iterator
from pathlib import Path

import pytest

from sqlalchemy import text

from remit.adapters.audit_keys import Ed25519CheckpointSigner
from remit.adapters.sql.audit import CHAIN_LOCK_KEY, SqlAuditLedger
from remit.adapters.sql.audit_writer import AuditWriter
from remit.adapters.sql.engine import SqlDatabase
from remit.core.audit.models import ActorKind, AuditActor, AuditEvent, FaultKind, SealedRecord
from remit.core.audit.service import AuditLog
from remit.errors import AuditUnavailable
from remit.testing import FrozenClock

THREADS = 8
PER_THREAD = 500

# A writer process: four threads append as fast as they can and print each id once it is acknowledged.
CRASH_WRITER = """
import datetime as dt, sys, threading
from remit.adapters.sql.engine import SqlDatabase
from remit.adapters.sql.audit_writer import AuditWriter
from remit.core.audit.models import ActorKind, AuditActor, AuditEvent
from remit.errors import AuditUnavailable
from remit.testing import FrozenClock

database = SqlDatabase.connect(sys.argv[1])
writer = AuditWriter(database, clock=FrozenClock(), max_batch=64)
writer.start()
lock = threading.Lock()

def run(worker):
    for n in range(1_000_000):
        event = AuditEvent(
            id=f"evt_{worker}_{n}", type="decision.made", occurred_at=dt.datetime(2026, 1, 15, tzinfo=dt.UTC),
            actor=AuditActor(ActorKind.AGENT, "agt_1"), subject_kind="task", subject_id="tsk_1", data={"n": n},
        )
        writer.append(event)
        with lock:
            sys.stdout.write(event.id + "\\n")
            sys.stdout.flush()

for worker in range(4):
    threading.Thread(target=run, args=(worker,), daemon=True).start()
threading.Event().wait()
"""


def audit_log(database: SqlDatabase, writer: AuditWriter | None = None) -> AuditLog:
    return AuditLog(
        appender=writer,  # type: ignore[arg-type]  # None: read-only use
        ledger=SqlAuditLedger(database.engine),
        clock=FrozenClock(),
        hmac_key=b"k" * 32,
        signer=None,
    )


def stored_ids(database: SqlDatabase) -> list[str]:
    with database.engine.connect() as connection:
        return list(connection.execute(text("SELECT id FROM audit_events")).scalars())


def test_concurrent_writers_lose_nothing_and_duplicate_nothing(database: SqlDatabase) -> None:
    """8 threads x 500 appends through one writer: every acknowledged record is stored exactly once, in one chain."""
    acknowledged: list[list[str]] = [[] for _ in range(THREADS)]
    errors: list[BaseException] = []
    signer = Ed25519CheckpointSigner.generate()
    with AuditWriter(database, clock=FrozenClock(), signer=signer, checkpoint_every=700, max_pending=64) as writer:

        def work(worker: int) -> None:
            try:
                for n in range(PER_THREAD):
                    record = writer.append(
                        AuditEvent(
                            id=f"evt_{worker}_{n}",
                            type="tool.called",
                            occurred_at=dt.datetime(2026, 1, 15, tzinfo=dt.UTC),
                            actor=AuditActor(ActorKind.AGENT, f"agt_{worker}"),
                            subject_kind="task",
                            subject_id=f"tsk_{worker}",
                            data={"n": n},
                            task_id=f"tsk_{worker}",
                        )
                    )
                    acknowledged[worker].append(record.event.id)
            except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert errors == []
    acked = [i for ids in acknowledged for i in ids]
    stored = stored_ids(database)
    assert len(acked) == THREADS * PER_THREAD
    assert sorted(stored) == sorted(acked)
    log = AuditLog(
        appender=writer, ledger=SqlAuditLedger(database.engine), clock=FrozenClock(), hmac_key=b"k" * 32, signer=signer
    )
    report = log.verify()
    assert report.ok, report.first_fault
    assert report.records_checked == THREADS * PER_THREAD
    assert report.checkpoints_checked >= 5


@pytest.mark.slow
def test_sigkill_mid_batch_loses_no_acknowledged_record(database: SqlDatabase, tmp_path: Path) -> None:
    """After SIGKILL of a writer process mid-batch, the chain verifies and every acknowledged id is stored."""
    url = database.engine.url.render_as_string(hide_password=False)
    script = tmp_path / "writer.py"
    script.write_text(CRASH_WRITER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # noqa: TID251 - the child runs this interpreter
    child = subprocess.Popen([sys.executable, str(script), url], stdout=subprocess.PIPE, text=True, env=env)
    acknowledged: list[str] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            acknowledged.append(line.strip())
            if len(acknowledged) >= 2000:
                break
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate()
        acknowledged.extend(line for line in rest.splitlines() if line)  # printed before the kill landed
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    stored = set(stored_ids(database))
    assert len(acknowledged) >= 2000
    assert set(acknowledged) <= stored
    report = audit_log(database).verify()
    assert report.ok, report.first_fault
    assert report.records_checked == len(stored)


@contextlib.contextmanager
def chain_held(database: SqlDatabase) -> Iterator[None]:
    """Hold the chain lock from outside the writer: SQLite's writer queue, or the PostgreSQL advisory lock."""
    if database.backend == "sqlite":
        with database.serialized():
            yield
        return
    with database.engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": CHAIN_LOCK_KEY})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": CHAIN_LOCK_KEY})
            connection.commit()


def test_a_full_queue_makes_callers_wait_and_drops_nothing(database: SqlDatabase) -> None:
    """With the store stuck, at most max_pending records are accepted; the other callers wait, and all land."""
    callers, bound = 20, 8
    acknowledged: list[str] = []
    with AuditWriter(database, clock=FrozenClock(), max_batch=4, max_pending=bound) as writer:

        def work(worker: int) -> None:
            record = writer.append(
                AuditEvent(
                    id=f"evt_wait_{worker}",
                    type="decision.made",
                    occurred_at=dt.datetime(2026, 1, 15, tzinfo=dt.UTC),
                    actor=AuditActor(ActorKind.AGENT, "agt_1"),
                    subject_kind="task",
                    subject_id="tsk_1",
                )
            )
            acknowledged.append(record.event.id)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(callers)]
        with chain_held(database):
            for thread in threads:
                thread.start()
            pause = threading.Event()
            for _ in range(400):  # bounded wait for the queue to fill, never an assertion on time
                if writer.pending >= bound or pause.wait(0.025):
                    break
            assert writer.pending == bound
            assert acknowledged == []
            assert sum(thread.is_alive() for thread in threads) == callers
        for thread in threads:
            thread.join()
    assert sorted(acknowledged) == sorted(f"evt_wait_{w}" for w in range(callers))
    assert sorted(stored_ids(database)) == sorted(acknowledged)
    assert audit_log(database).verify().ok


def test_truncation_is_not_hidden_by_a_missing_checkpoint_table_row(database: SqlDatabase) -> None:
    """Deleting the newest checkpoint together with the tail still leaves the earlier checkpoint to catch it."""
    signer = Ed25519CheckpointSigner.generate()
    with AuditWriter(database, clock=FrozenClock(), signer=signer, checkpoint_every=3, max_batch=1) as writer:
        for n in range(7):
            writer.append(
                AuditEvent(
                    id=f"evt_{n}",
                    type="decision.made",
                    occurred_at=dt.datetime(2026, 1, 15, tzinfo=dt.UTC),
                    actor=AuditActor(ActorKind.AGENT, "agt_1"),
                    subject_kind="task",
                    subject_id="tsk_1",
                )
            )
    with database.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_checkpoints WHERE seq = 6"))
        connection.execute(text("DELETE FROM audit_events WHERE seq > 2"))
    log = AuditLog(
        appender=writer, ledger=SqlAuditLedger(database.engine), clock=FrozenClock(), hmac_key=b"k" * 32, signer=signer
    )
    fault = log.verify().first_fault
    assert fault is not None
    assert (fault.kind, fault.sequence) == (FaultKind.TRUNCATED, 3)


def _event(name: str) -> AuditEvent:
    return AuditEvent(
        id=name,
        type="decision.made",
        occurred_at=dt.datetime(2026, 1, 15, tzinfo=dt.UTC),
        actor=AuditActor(ActorKind.AGENT, "agt_1"),
        subject_kind="task",
        subject_id="tsk_1",
    )


def test_submitted_records_settle_their_futures_once_durable_alongside_blocking_callers(
    database: SqlDatabase,
) -> None:
    """The event loop's path: futures resolve to the sealed records, interleaved with threads' appends."""
    acknowledged: list[str] = []

    async def submit_all(writer: AuditWriter) -> list[SealedRecord]:
        futures = [writer.submit(_event(f"evt_future_{n}")) for n in range(50)]
        threads = [
            threading.Thread(target=lambda n=n: acknowledged.append(writer.append(_event(f"evt_thread_{n}")).event.id))
            for n in range(8)
        ]
        for thread in threads:
            thread.start()
        records = await asyncio.wait_for(asyncio.gather(*(f for f in futures if f is not None)), timeout=30)
        for thread in threads:
            thread.join()
        return records

    with AuditWriter(database, clock=FrozenClock(), max_batch=16) as writer:
        records = asyncio.run(submit_all(writer))
    assert [r.event.id for r in records] == [f"evt_future_{n}" for n in range(50)]
    assert sorted(stored_ids(database)) == sorted([*(r.event.id for r in records), *acknowledged])
    assert len({r.sequence for r in records}) == 50
    assert audit_log(database).verify().ok


def test_a_future_given_up_on_does_not_stop_its_batch(database: SqlDatabase) -> None:
    """A caller that stops waiting (timeout, disconnect) leaves its record durable and the rest settled."""

    async def run(writer: AuditWriter) -> SealedRecord:
        abandoned = writer.submit(_event("evt_abandoned"))
        kept = writer.submit(_event("evt_kept"))
        assert abandoned is not None
        assert kept is not None
        abandoned.cancel()
        return await asyncio.wait_for(kept, timeout=30)

    with AuditWriter(database, clock=FrozenClock()) as writer:
        record = asyncio.run(run(writer))
    assert record.event.id == "evt_kept"
    assert sorted(stored_ids(database)) == ["evt_abandoned", "evt_kept"]


def test_submit_never_blocks_a_full_queue_and_refuses_a_stopped_writer(database: SqlDatabase) -> None:
    """A full queue answers None (the caller then waits in a thread, never drops); a stopped writer refuses."""
    bound = 4

    async def fill(writer: AuditWriter) -> list[object]:
        return [writer.submit(_event(f"evt_full_{n}")) for n in range(bound + 3)]

    with AuditWriter(database, clock=FrozenClock(), max_batch=2, max_pending=bound) as writer, chain_held(database):
        accepted = asyncio.run(fill(writer))
        assert sum(f is not None for f in accepted) >= bound
        assert accepted[-1] is None

    async def refused(writer: AuditWriter) -> None:
        writer.submit(_event("evt_stopped"))

    with pytest.raises(AuditUnavailable):
        asyncio.run(refused(AuditWriter(database, clock=FrozenClock())))
