"""Audit throughput: durable records/s through `remit.audit.append`, group commit vs one transaction each, and verify.

One run, same machine, both stores: SQLite (WAL, synchronous=FULL, a temporary file) and, when
reachable, PostgreSQL (a temporary schema). For each store:

- one transaction per record, one caller: `tx.audit.append` then commit, in a loop;
- group commit through `remit.audit.append` on a started `Remit` (what the HTTP server's threads
  call), with 8 and with 64 concurrent callers, each appending as fast as it is acknowledged;
- verification of every record written, in records/s.

Each figure is printed beside its target (issue 5): >= 20,000 durable records/s on SQLite, >= 10,000/s
on PostgreSQL, verification >= 100,000 records/s. Also printed: the mean group size (records per
commit) and the process CPU per record, which say whether a figure is bound by commit latency
(few records per commit, CPU to spare) or by CPU (one interpreter, one core's worth of Python).

    python bench/audit.py [--postgres URL] [--seconds-per-phase 5] [--callers 8 64]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import tempfile
import threading
import time

from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import create_engine, text

from remit.adapters.sql.migrate import upgrade
from remit.bootstrap import Remit, build
from remit.core.audit.chain import prepare, seal_batch
from remit.core.audit.models import GENESIS_HASH, ActorKind, AuditActor, AuditEvent
from remit.settings import Settings, StoreSettings

TARGET = {"sqlite": 20_000, "postgresql": 10_000}
VERIFY_TARGET = 100_000


def make_event(worker: int, n: int) -> AuditEvent:
    """A decision record as the decision path writes one (ids, task, agent, a few reasons)."""
    return AuditEvent(
        id=f"evt_{worker:02d}_{n:010d}_{secrets.token_hex(4)}",
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


def measure(seconds: float, callers: int, append: Callable[[int, int], object]) -> tuple[float, float]:
    """`callers` threads call `append(worker, n)` for `seconds`: (records/s, process CPU seconds per record)."""
    counts = [0] * callers
    stop = threading.Event()

    def work(worker: int) -> None:
        n = 0
        while not stop.is_set():
            append(worker, n)
            n += 1
        counts[worker] = n

    threads = [threading.Thread(target=work, args=(w,)) for w in range(callers)]
    cpu, start = time.process_time(), time.perf_counter()
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed, used = time.perf_counter() - start, time.process_time() - cpu
    total = max(1, sum(counts))
    return total / elapsed, used / total


def one_per_transaction(remit: Remit, seconds: float) -> tuple[float, float]:
    def append(worker: int, n: int) -> None:
        with remit.database.transaction() as tx:
            tx.audit.append(make_event(worker, n))

    return measure(seconds, 1, append)


def verification(remit: Remit) -> tuple[float, int]:
    start = time.perf_counter()
    report = remit.audit.verify()
    elapsed = time.perf_counter() - start
    assert report.ok, report.first_fault  # noqa: S101 - a bench over a broken chain measures nothing
    return report.records_checked / elapsed, report.records_checked


def run(name: str, settings: Settings, seconds: float, callers: list[int]) -> None:
    remit = build(settings)
    target = TARGET[name]
    print(f"{name}:")
    try:
        single, single_cpu = one_per_transaction(remit, seconds / 2)
        print(
            f"  one transaction per record, 1 caller : {single:9,.0f} records/s"
            f"   ({single_cpu * 1e6:4.0f} us CPU/record)"
        )
        remit.start()  # as the server does: from here `remit.audit.append` is group-committed
        for count in callers:
            batches, records = remit.audit_writer.committed
            grouped, cpu = measure(seconds, count, lambda w, n: remit.audit.append(make_event(w, n)))
            after_batches, after_records = remit.audit_writer.committed
            group = (after_records - records) / max(1, after_batches - batches)
            print(
                f"  group commit, {count:3d} callers          : {grouped:9,.0f} records/s"
                f"   ({cpu * 1e6:4.0f} us CPU/record, {group:5.1f} records/commit)"
                f"   x{grouped / single:5.1f} vs one-per-transaction;"
                f" target {target:,}: {grouped / target:4.2f}"
            )
        rate, verified = verification(remit)
        print(
            f"  verification                        : {rate:9,.0f} records/s   over {verified:,} records;"
            f" target {VERIFY_TARGET:,}: {rate / VERIFY_TARGET:4.2f}"
        )
    finally:
        remit.close()


def calibrate() -> None:
    """Python speed on the machine: canonicalise and seal alone (no database, no threads)."""
    events = [make_event(0, n) for n in range(5000)]
    start = time.perf_counter()
    prepared = [prepare(event) for event in events]
    middle = time.perf_counter()
    seal_batch(GENESIS_HASH, 0, prepared)
    end = time.perf_counter()
    print(
        f"cpu: canonicalise {len(events) / (middle - start):,.0f} records/s, "
        f"seal {len(events) / (end - middle):,.0f} records/s (one core); "
        f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores"
    )


def settings_for(home: Path, url: str) -> Settings:
    return Settings(home=home, store=StoreSettings(url=url), operator_token=SecretStr("remit_op_" + "b" * 32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--seconds-per-phase", type=float, default=5.0)
    parser.add_argument("--callers", type=int, nargs="+", default=[8, 64])
    args = parser.parse_args()
    calibrate()

    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        settings = settings_for(home, f"sqlite:///{home / 'bench.db'}")
        remit = build(settings)
        upgrade(remit.database.engine)
        remit.close()
        run("sqlite", settings, args.seconds_per_phase, args.callers)

    schema = f"remit_bench_{secrets.token_hex(4)}"
    admin = create_engine(args.postgres, connect_args={"connect_timeout": 3})
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001 - PostgreSQL is optional for the bench
        print(f"postgresql: skipped ({type(exc).__name__})")
        return
    try:
        with tempfile.TemporaryDirectory() as directory:
            settings = settings_for(Path(directory), f"{args.postgres}?options=-csearch_path%3D{schema}")
            remit = build(settings)
            upgrade(remit.database.engine)
            remit.close()
            run("postgresql", settings, args.seconds_per_phase, args.callers)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
