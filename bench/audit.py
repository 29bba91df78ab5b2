"""Audit throughput: durable records/s with group commit vs one transaction per record, and verification records/s.

Runs on SQLite (WAL, synchronous=FULL, a temporary file) and, when reachable, PostgreSQL, in the
same run, bounded to about a minute. Targets (issue 5): >= 20,000 durable records/s on SQLite,
>= 10,000/s on PostgreSQL, verification >= 100,000 records/s.

    python bench/audit.py [--postgres URL] [--seconds-per-phase 6]
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import tempfile
import threading
import time

from pathlib import Path

from sqlalchemy import create_engine, text

from remit.adapters.sql.audit import SqlAuditLedger
from remit.adapters.sql.audit_writer import AuditWriter
from remit.adapters.sql.engine import SqlDatabase
from remit.adapters.sql.migrate import upgrade
from remit.core.audit.chain import seal
from remit.core.audit.models import GENESIS_HASH, ActorKind, AuditActor, AuditEvent
from remit.core.audit.service import AuditLog
from remit.testing import FrozenClock

TARGET = {"sqlite": 20_000, "postgresql": 10_000}
VERIFY_TARGET = 100_000
THREADS = 128


def make_event(worker: int, n: int) -> AuditEvent:
    return AuditEvent(
        id=f"evt_{worker:02d}_{n:010d}_{secrets.token_hex(2)}",
        type="decision.made",
        occurred_at=dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC) + dt.timedelta(microseconds=n),
        actor=AuditActor(ActorKind.AGENT, "agt_01jbench000000000000000000"),
        subject_kind="task",
        subject_id="tsk_01jbench000000000000000000",
        data={"effect": "allow", "reasons": ["pol_default", "guard.scope"], "tool": "github", "action": "merge_pr"},
        task_id="tsk_01jbench000000000000000000",
        agent_id="agt_01jbench000000000000000000",
        correlation_id="tsk_01jbench000000000000000000",
    )


def one_per_transaction(database: SqlDatabase, seconds: float) -> float:
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        with database.transaction() as tx:
            tx.audit.append(make_event(99, count))
        count += 1
    return count / (time.perf_counter() - start)


def group_commit(database: SqlDatabase, seconds: float) -> float:
    counts = [0] * THREADS
    stop = threading.Event()
    with AuditWriter(database, clock=FrozenClock(), max_batch=2000, max_pending=20_000) as writer:

        def work(worker: int) -> None:
            n = 0
            while not stop.is_set():
                writer.append(make_event(worker, n))
                n += 1
            counts[worker] = n

        threads = [threading.Thread(target=work, args=(w,)) for w in range(THREADS)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        stop.wait(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
    return sum(counts) / elapsed


def verification(database: SqlDatabase) -> tuple[float, int]:
    log = AuditLog(appender=None, ledger=SqlAuditLedger(database.engine), clock=FrozenClock(), hmac_key=b"k" * 32)  # type: ignore[arg-type]
    start = time.perf_counter()
    report = log.verify(page_size=5000)
    elapsed = time.perf_counter() - start
    assert report.ok, report.first_fault  # noqa: S101 - a bench over a broken chain measures nothing
    return report.records_checked / elapsed, report.records_checked


def run(name: str, database: SqlDatabase, seconds: float) -> None:
    single = one_per_transaction(database, seconds / 2)
    grouped = group_commit(database, seconds)
    verify_rate, verified = verification(database)
    target = TARGET[name]
    print(f"{name}:")
    print(f"  one transaction per record : {single:10,.0f} records/s")
    print(
        f"  group commit ({THREADS} threads)   : {grouped:10,.0f} records/s   "
        f"x{grouped / single:.1f} vs one-per-transaction; target {target:,} -> {grouped / target:.2f} of target"
    )
    print(
        f"  verification               : {verify_rate:10,.0f} records/s over {verified:,} records; "
        f"target {VERIFY_TARGET:,} -> {verify_rate / VERIFY_TARGET:.2f} of target"
    )


def calibrate() -> None:
    """CPU ceiling of this machine: sealing alone (JCS + SHA-256), no database, one thread."""
    events = [make_event(0, n) for n in range(5000)]
    start = time.perf_counter()
    previous = GENESIS_HASH
    for sequence, event in enumerate(events, start=1):
        previous = seal(previous, sequence, event).hash
    print(f"cpu ceiling: seal alone {len(events) / (time.perf_counter() - start):,.0f} records/s (one core)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--seconds-per-phase", type=float, default=6.0)
    args = parser.parse_args()
    calibrate()

    with tempfile.TemporaryDirectory() as directory:
        database = SqlDatabase.connect(f"sqlite:///{Path(directory) / 'bench.db'}")
        upgrade(database.engine)
        run("sqlite", database, args.seconds_per_phase)
        database.dispose()

    schema = f"remit_bench_{secrets.token_hex(4)}"
    admin = create_engine(args.postgres, connect_args={"connect_timeout": 3})
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001 - PostgreSQL is optional for the bench
        print(f"postgresql: skipped ({type(exc).__name__})")
        return
    try:
        database = SqlDatabase.connect(f"{args.postgres}?options=-csearch_path%3D{schema}")
        upgrade(database.engine)
        run("postgresql", database, args.seconds_per_phase)
        database.dispose()
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
