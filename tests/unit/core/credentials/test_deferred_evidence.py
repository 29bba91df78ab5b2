"""Evidence whose signature the batch checks (ADR 0015): nothing is written, spent or signed for a forgery.

The event-loop door decides on an identity whose signature has not been checked yet, and the batch's
leading thread checks it before the transaction opens. These tests give issuance a check that fails,
as a forged JWT-SVID's does (right `kid`, wrong key), and look at what reached the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

from collections.abc import Coroutine, Iterator, Sequence
from typing import Any

import pytest

from sqlalchemy import select
from tests.unit.core.credentials.conftest import Stack, declaration, workload
from tests.unit.core.credentials.test_group_commit import count, gated, issuance_on

from remit.adapters.sql.engine import SqlDatabase, SqlTransaction
from remit.adapters.sql.tables import audit_events, credentials, evidence_uses, tasks
from remit.core.attestation.models import DeferredCheck, WorkloadIdentity
from remit.core.credentials import group_commit
from remit.core.credentials.issuance import IssuanceService
from remit.core.credentials.models import IssuedCredential
from remit.core.ids import SequentialIdFactory
from remit.core.tasks.models import Task
from remit.errors import AgentUntraceable, AttestationFailed, Conflict, Unavailable

FORGED = {"reason": "bad_signature"}


class Checks:
    """Signature checks that pass or fail on demand, remembering the thread each ran in."""

    def __init__(self) -> None:
        self.threads: list[int] = []
        self.order: list[str] = []

    def passing(self) -> DeferredCheck:
        return DeferredCheck(self._record)

    def forged(self) -> DeferredCheck:
        def fail() -> None:
            self._record()
            raise AttestationFailed(details=dict(FORGED))

        return DeferredCheck(fail)

    def _record(self) -> None:
        self.threads.append(threading.get_ident())
        self.order.append("check")


def start(
    issuance: IssuanceService, identity: WorkloadIdentity, check: DeferredCheck, **overrides: object
) -> Coroutine[Any, Any, tuple[Task, IssuedCredential]]:
    return issuance.start_task_async(identity, declaration(**overrides), evidence_check=check)


def refusals(database: SqlDatabase) -> int:
    return count(database, audit_events, audit_events.c.type == "credential.refused")


def spent(database: SqlDatabase, jti: str) -> bool:
    with database.engine.connect() as connection:
        return connection.execute(select(evidence_uses.c.jti).where(evidence_uses.c.jti == jti)).first() is not None


def test_a_forgery_in_a_shared_batch_fails_alone_and_writes_nothing(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """Three good units and a forged one share a batch: three tasks, one 401, no trace of the forgery."""
    issuance, gate = gated(stack, database, ids)
    issuance.start_task(workload(jti="warm"), declaration())  # fills the registry cache
    checks = Checks()
    # A thread's issuance leads and holds its batch open until the loop's four have queued behind it;
    # those four then make the next batch together.
    gate.arm(4)
    blocker = threading.Thread(target=lambda: issuance.start_task(workload(jti="blocker"), declaration()))
    blocker.start()
    while not issuance.commits._leading:
        time.sleep(0.001)

    async def batch() -> list[object]:
        calls = [
            start(issuance, workload(jti="good-1"), checks.passing()),
            start(issuance, workload(jti="forged"), checks.forged()),
            start(issuance, workload(jti="good-2"), checks.passing()),
            start(issuance, workload(jti="good-3"), checks.passing()),
        ]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    results = asyncio.run(batch())
    blocker.join()

    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 1
    assert isinstance(refused[0], AttestationFailed)
    assert refused[0].details == FORGED
    assert isinstance(results[1], AttestationFailed)
    assert issuance.commits.largest_batch == 3  # the forgery's batch-mates, committed without it
    assert count(database, tasks) == 2 + 3
    assert count(database, credentials) == 2 + 3
    assert count(database, audit_events, audit_events.c.type == "credential.issued") == 2 + 3
    assert refusals(database) == 0  # no refusal in a name the evidence did not prove
    assert not spent(database, "forged")


def test_the_forgerys_evidence_use_stays_unspent_for_the_real_holder(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """A forged SVID that copies a real one's `jti` cannot burn it: the real SVID still issues."""
    issuance, _ = gated(stack, database, ids)
    checks = Checks()

    async def forged_then_real() -> tuple[object, object]:
        forged = await asyncio.gather(start(issuance, workload(jti="shared"), checks.forged()), return_exceptions=True)
        real = await start(issuance, workload(jti="shared"), checks.passing())
        return forged[0], real

    forged, real = asyncio.run(forged_then_real())
    assert isinstance(forged, AttestationFailed)
    assert not isinstance(real, BaseException)
    assert spent(database, "shared")
    assert count(database, tasks) == 1


def test_the_check_runs_in_the_leading_thread_before_the_transaction(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """Off the event loop, and before the batch's transaction opens: a forgery never holds the write lock."""
    checks = Checks()

    @contextlib.contextmanager
    def observed() -> Iterator[SqlTransaction]:
        checks.order.append("transaction")
        with database.transaction() as tx:
            yield tx

    issuance = issuance_on(stack, observed, database, ids)
    loop_thread = threading.get_ident()
    issuance.start_task(workload(jti="warm"), declaration())
    checks.order.clear()

    async def one() -> object:
        return await start(issuance, workload(jti="loop"), checks.passing())

    asyncio.run(one())
    assert checks.order == ["check", "transaction"]
    assert checks.threads
    assert loop_thread not in checks.threads


def test_forged_evidence_for_an_unregistered_workload_reads_attestation_failed(
    stack: Stack, database: SqlDatabase
) -> None:
    """The agent lookup refuses first, but the answer is about the evidence: no `agent_untraceable`, no record."""
    checks = Checks()

    async def forged() -> object:
        return await start(stack.issuance, workload("agents/stranger", jti="j-1"), checks.forged())

    with pytest.raises(AttestationFailed) as caught:
        asyncio.run(forged())
    assert caught.value.details == FORGED
    assert refusals(database) == 0

    async def proven() -> object:
        return await start(stack.issuance, workload("agents/stranger", jti="j-2"), checks.passing())

    with pytest.raises(AgentUntraceable):
        asyncio.run(proven())
    assert refusals(database) == 1  # a proven workload's refusal is recorded, as before


def test_forged_evidence_refused_on_kept_rows_is_checked_before_the_store_decides(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """Kept rows refuse (environment), so the store's rows decide, under its lock: the check runs first."""
    issuance, _ = gated(stack, database, ids)
    issuance.start_task(workload(jti="warm"), declaration())
    checks = Checks()

    async def forged() -> object:
        return await start(issuance, workload(jti="j-1"), checks.forged(), environment="staging")

    with pytest.raises(AttestationFailed):
        asyncio.run(forged())
    assert refusals(database) == 0
    assert count(database, tasks) == 1
    assert not spent(database, "j-1")


def test_a_unit_refused_by_before_never_reaches_apply() -> None:
    """`before` refuses a unit alone, in the leading thread, before the transaction; the others commit."""
    applied: list[list[str]] = []
    opened: list[str] = []

    @contextlib.contextmanager
    def uow() -> Iterator[None]:
        opened.append("transaction")
        yield

    def apply(_tx: None, units: Sequence[str]) -> list[Exception | None]:
        applied.append(list(units))
        return [None] * len(units)

    def before(unit: str) -> None:
        opened.append(f"before {unit}")
        if unit == "forged":
            raise AttestationFailed(details=dict(FORGED))
        if unit == "broken":
            msg = "a bug in a check"
            raise RuntimeError(msg)

    commits: group_commit.GroupCommit[None, str] = group_commit.GroupCommit(uow, apply, before=before)

    async def run() -> list[object]:
        units = ("a", "forged", "broken", "b")
        return await asyncio.gather(*(commits.submit_async(u) for u in units), return_exceptions=True)

    results = asyncio.run(run())
    assert results[0] is None
    assert results[3] is None
    assert isinstance(results[1], AttestationFailed)
    assert isinstance(results[2], Unavailable)  # an unexpected failure still fails closed
    assert [u for batch in applied for u in batch] == ["a", "b"]
    assert "forged" not in {u for batch in applied for u in batch}
    # Each batch: its units' checks, then its transaction (none for a batch refused whole).
    assert opened[-1] == "transaction"
    assert opened.count("transaction") == len(applied)

    # Everything queued refused: no transaction at all.
    opened.clear()

    async def only_forged() -> list[BaseException | None]:
        return list(await asyncio.gather(commits.submit_async("forged"), return_exceptions=True))

    assert isinstance(asyncio.run(only_forged())[0], AttestationFailed)
    assert opened == ["before forged"]


def test_a_deferred_check_runs_once_and_repeats_its_outcome() -> None:
    calls: list[int] = []

    def fail() -> None:
        calls.append(1)
        raise AttestationFailed(details=dict(FORGED))

    check = DeferredCheck(fail)
    for _ in range(3):
        with pytest.raises(AttestationFailed):
            check()
    assert len(calls) == 1
    assert not check.passed

    passing = DeferredCheck(lambda: calls.append(2))
    passing()
    passing()
    assert passing.passed
    assert calls.count(2) == 1
    assert DeferredCheck.done().passed


def test_concurrent_callers_of_one_check_run_it_once() -> None:
    started = threading.Barrier(8)
    runs: list[int] = []

    def slow() -> None:
        runs.append(1)
        threading.Event().wait(0.02)
        raise Conflict("forged")

    check = DeferredCheck(slow)

    def call() -> str:
        started.wait()
        try:
            check()
        except Conflict:
            return "refused"
        return "passed"

    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(call())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["refused"] * 8
    assert len(runs) == 1
